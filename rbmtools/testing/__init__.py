"""Support for tests, benchmarks and the shipped sample data; nothing in the package uses it.

- ``synthetic``: seeded synthetic webhook and outbox logs with a known truth per message.
- ``sample_data``: the sample logs in ``data/sample/`` (a real emulator experiment, replayed
  identically).
- ``lifecycle_sql``: the load summary's aggregates counted per message instead, the twins the
  tests hold equal to the summary.

It sits on the top floor with ``notebook``: it may import any subsystem, and only tests,
benchmarks and scripts import it (the demo borrows the sample's device profile).
"""
