-- rbmtools analysis SQL (bigquery), grouped by useCase, arm.
-- Generated from rbmtools.analysis.sql (DuckDB dialect) by sqlglot; do not edit.
-- Results, in order: the load report, the group counts, the latency bins (deliveries
-- and censorings per log-spaced bin) and the read bins, then one lifecycle row per message; rbmtools computes
-- the statistics (Wilson intervals, Kaplan-Meier, best TTL) from the counts and bins.

CREATE TEMP FUNCTION rbm_time(s STRING) AS (
  CASE WHEN REGEXP_CONTAINS(s, r'^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$') THEN SAFE_CAST(REGEXP_REPLACE(UPPER(s), r'(\.[0-9]{6})[0-9]+', r'\1') AS TIMESTAMP) END
);

CREATE TEMP FUNCTION rbm_decode_push(data STRING) AS ((
  SELECT AS STRUCT
    JSON_VALUE(doc, '$.senderPhoneNumber') AS senderPhoneNumber,
    JSON_VALUE(doc, '$.phoneNumber') AS phoneNumber,
    JSON_VALUE(doc, '$.messageId') AS messageId,
    JSON_VALUE(doc, '$.eventId') AS eventId,
    JSON_VALUE(doc, '$.sendTime') AS sendTime,
    JSON_VALUE(doc, '$.eventType') AS eventType
  FROM (SELECT SAFE.PARSE_JSON(SAFE_CONVERT_BYTES_TO_STRING(SAFE.FROM_BASE64(data))) AS doc)
));

CREATE TEMP TABLE rbm_event_rows AS
SELECT _FILE_NAME AS source_file, receivedAt, verified, event, senderPhoneNumber, phoneNumber, messageId, eventId, sendTime, eventType, message, send_time_typed, received_at_typed, CAST(NULL AS TIMESTAMP) AS send_time_typed, CAST(NULL AS TIMESTAMP) AS received_at_typed FROM `proj.rbm.events`;

CREATE TEMP TABLE rbm_outbox_rows AS
SELECT _FILE_NAME AS source_file, kind, messageId, phone, agentId, sendTime, useCase, trafficType, ttl, expireTime, status, experiment, arm, error, requestedAt, attempt, channel, sentAt, reason, policyVersion, send_time_typed, expire_time_typed, requested_at_typed, sent_at_typed, CAST(NULL AS TIMESTAMP) AS send_time_typed, CAST(NULL AS TIMESTAMP) AS expire_time_typed, CAST(NULL AS TIMESTAMP) AS requested_at_typed, CAST(NULL AS TIMESTAMP) AS sent_at_typed FROM `proj.rbm.outbox`;

CREATE TEMP TABLE rbm_summary AS
WITH rbm_event_shapes AS (
  SELECT
    source_file,
    verified,
    receivedAt,
    event,
    message,
    senderPhoneNumber,
    phoneNumber,
    messageId,
    eventId,
    sendTime,
    eventType,
    send_time_typed,
    received_at_typed,
    CASE WHEN NOT message.data IS NULL THEN rbm_decode_push(message.data) END AS push_event
  FROM rbm_event_rows
), rbm_event_text AS (
  SELECT
    source_file,
    verified,
    COALESCE(event.messageId, messageId, push_event.messageId) AS message_id,
    COALESCE(event.eventId, eventId, push_event.eventId) AS event_id,
    COALESCE(event.eventType, eventType, push_event.eventType) AS event_type,
    COALESCE(event.senderPhoneNumber, senderPhoneNumber, push_event.senderPhoneNumber) AS sender_phone,
    COALESCE(event.phoneNumber, phoneNumber, push_event.phoneNumber) AS server_phone,
    COALESCE(event.sendTime, sendTime, push_event.sendTime) AS send_text,
    COALESCE(receivedAt, message.publishTime) AS received_text,
    send_time_typed,
    received_at_typed
  FROM rbm_event_shapes
), rbm_events AS (
  SELECT
    source_file,
    verified,
    message_id,
    event_id,
    event_type,
    sender_phone,
    server_phone,
    send_text,
    received_text,
    COALESCE(send_time_typed, rbm_time(send_text)) AS send_time,
    COALESCE(received_at_typed, rbm_time(received_text)) AS received_at
  FROM rbm_event_text
), rbm_shaped AS (
  SELECT
    *,
    CASE
      WHEN NOT sender_phone IS NULL AND NOT event_type IS NULL AND NOT message_id IS NULL
      THEN 'message'
      WHEN NOT sender_phone IS NULL
      AND (
        NOT event_type IS NULL OR NOT message_id IS NULL
      )
      THEN 'other'
      WHEN NOT server_phone IS NULL AND NOT event_type IS NULL AND NOT message_id IS NULL
      THEN 'message'
      WHEN NOT server_phone IS NULL AND NOT event_type IS NULL
      THEN 'other'
      ELSE 'malformed'
    END AS shape,
    (
      NOT send_text IS NULL AND send_time IS NULL
    )
    OR (
      NOT received_text IS NULL AND received_at IS NULL
    ) AS bad_time
  FROM rbm_events
), rbm_classified AS (
  SELECT
    source_file,
    verified,
    message_id,
    event_id,
    event_type,
    sender_phone,
    server_phone,
    send_time,
    received_at,
    CASE
      WHEN bad_time
      THEN 'malformed'
      WHEN shape = 'message'
      AND send_time IS NULL
      AND event_type IN ('DELIVERED', 'READ', 'TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED')
      THEN 'malformed'
      ELSE shape
    END AS cls,
    CASE
      WHEN bad_time
      THEN 'unreadable time'
      WHEN shape = 'malformed' AND INSTR(source_file, '/_other/') > 0
      THEN 'kept in the other log of the receiver'
      WHEN shape = 'malformed'
      THEN 'not an event'
      WHEN shape = 'message'
      AND send_time IS NULL
      AND event_type IN ('DELIVERED', 'READ', 'TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED')
      THEN 'lifecycle event without sendTime'
    END AS problem
  FROM rbm_shaped
), rbm_event_keys AS (
  SELECT
    cls,
    CASE WHEN cls = 'message' THEN message_id END AS message_id,
    CASE WHEN cls = 'malformed' THEN source_file END AS bad_file,
    problem,
    CASE
      WHEN cls = 'malformed'
      THEN 0
      ELSE CASE
        WHEN NOT event_id IS NULL
        THEN FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_id)))
        ELSE FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_type, send_time)))
      END
    END AS event_key,
    MIN(
      CASE
        WHEN event_type = 'DELIVERED'
        THEN 2
        WHEN event_type < 'DELIVERED'
        THEN 1
        WHEN event_type = 'READ'
        THEN 4
        WHEN event_type < 'READ'
        THEN 3
        WHEN event_type = 'TTL_EXPIRATION_REVOKED'
        THEN 6
        WHEN event_type < 'TTL_EXPIRATION_REVOKED'
        THEN 5
        WHEN event_type = 'TTL_EXPIRATION_REVOKE_FAILED'
        THEN 8
        WHEN event_type < 'TTL_EXPIRATION_REVOKE_FAILED'
        THEN 7
        WHEN NOT event_type IS NULL
        THEN 9
      END
    ) AS type_code,
    MIN(send_time) AS send_time,
    MAX(send_time) AS last_send_time,
    MIN(received_at) AS received_at,
    MAX(received_at) AS last_received_at,
    COUNT(*) AS copies,
    COUNTIF(verified = FALSE) AS unverified
  FROM rbm_classified
  GROUP BY
    cls,
    rbm_classified.message_id,
    event_key,
    CASE WHEN cls = 'malformed' THEN source_file END,
    problem
), rbm_message_events AS (
  SELECT
    CASE cls
      WHEN 'message'
      THEN 'message'
      WHEN 'other'
      THEN 'other_events'
      ELSE 'malformed_event_lines'
    END AS row_class,
    message_id,
    bad_file,
    problem,
    MIN(IF(type_code = 2, send_time, NULL)) AS delivered_at,
    MIN(IF(type_code = 4, send_time, NULL)) AS read_at,
    MIN(IF(type_code = 6, send_time, NULL)) AS ttl_revoked_at,
    MIN(IF(type_code = 8, send_time, NULL)) AS ttl_failed_at,
    CASE WHEN cls = 'malformed' THEN 0 ELSE COUNT(*) END AS events,
    SUM(copies) AS lines,
    SUM(unverified) AS unverified,
    MIN(send_time) AS first_event_at,
    MAX(last_send_time) AS last_event_at,
    ARRAY_AGG(
      IF((
        NOT received_at IS NULL
      ), received_at, NULL) IGNORE NULLS ORDER BY IF((
        NOT received_at IS NULL
      ), 0, 1), send_time IS NULL, send_time ASC, received_at IS NULL, received_at ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS first_event_rx,
    MIN(received_at) AS first_received_at,
    MAX(last_received_at) AS last_received_at
  FROM rbm_event_keys
  GROUP BY
    cls,
    message_id,
    bad_file,
    problem
), rbm_outbox_read AS (
  SELECT
    source_file,
    kind,
    messageId,
    phone,
    agentId,
    useCase,
    trafficType,
    ttl,
    status,
    experiment,
    arm,
    error,
    attempt,
    channel,
    reason,
    policyVersion,
    sendTime AS sendTime_text,
    COALESCE(send_time_typed, rbm_time(sendTime)) AS sendTime_at,
    expireTime AS expireTime_text,
    COALESCE(expire_time_typed, rbm_time(expireTime)) AS expireTime_at,
    requestedAt AS requestedAt_text,
    COALESCE(requested_at_typed, rbm_time(requestedAt)) AS requestedAt_at,
    sentAt AS sentAt_text,
    COALESCE(sent_at_typed, rbm_time(sentAt)) AS sentAt_at
  FROM rbm_outbox_rows
), rbm_outbox_checked AS (
  SELECT
    source_file,
    kind,
    messageId,
    phone,
    agentId,
    useCase,
    trafficType,
    ttl,
    status,
    experiment,
    arm,
    error,
    attempt,
    channel,
    reason,
    policyVersion,
    sendTime_at AS sendTime,
    expireTime_at AS expireTime,
    requestedAt_at AS requestedAt,
    sentAt_at AS sentAt,
    (
      NOT sendTime_text IS NULL AND sendTime_at IS NULL
    )
    OR (
      NOT expireTime_text IS NULL AND expireTime_at IS NULL
    )
    OR (
      NOT requestedAt_text IS NULL AND requestedAt_at IS NULL
    )
    OR (
      NOT sentAt_text IS NULL AND sentAt_at IS NULL
    ) AS bad_time
  FROM rbm_outbox_read
), rbm_outbox AS (
  SELECT
    *,
    CASE
      WHEN bad_time
      THEN FALSE
      WHEN kind = 'send'
      THEN NOT messageId IS NULL AND NOT sendTime IS NULL AND NOT status IS NULL
      WHEN kind = 'revoke'
      THEN NOT messageId IS NULL AND NOT requestedAt IS NULL AND NOT status IS NULL
      WHEN kind = 'fallback'
      THEN NOT messageId IS NULL AND NOT sentAt IS NULL
      ELSE FALSE
    END AS ok,
    CASE WHEN bad_time THEN 'unreadable time' ELSE 'not an outbox record' END AS problem
  FROM rbm_outbox_checked
), rbm_outbox_sends AS (
  SELECT
    messageId AS message_id,
    COUNT(*) AS send_attempts,
    ARRAY_AGG(
      IF(
        (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        STRUCT(
          sendTime AS send_time,
          status AS send_status,
          expireTime AS expire_time,
          ttl AS ttl,
          useCase AS use_case,
          trafficType AS traffic_type,
          experiment AS experiment,
          arm AS arm,
          policyVersion AS policy_version
        ),
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        0,
        1
      ), (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL, (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS chosen,
    MIN(
      (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime)
    ) AS chosen_rank,
    MIN(sendTime) AS first_outbox_at,
    MAX(sendTime) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    ok AND kind = 'send'
  GROUP BY
    messageId
), rbm_outbox_others AS (
  SELECT
    messageId AS message_id,
    COUNT(*) AS outbox_lines,
    COUNTIF(kind = 'revoke') AS api_revoke_attempts,
    MIN(IF(kind = 'revoke', requestedAt, NULL)) AS api_revoke_first_at,
    MIN(IF(kind = 'revoke' AND status = 200, requestedAt, NULL)) AS api_revoked_at,
    MIN(IF(kind = 'revoke' AND status = 404, requestedAt, NULL)) AS api_refused_at,
    COUNTIF(kind = 'revoke' AND NOT status IN (200, 404)) AS api_revoke_errors,
    COUNTIF(kind = 'fallback') AS fallbacks,
    MIN(IF(kind = 'fallback', sentAt, NULL)) AS fallback_at,
    MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
    MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    ok AND kind <> 'send'
  GROUP BY
    messageId
), rbm_outbox_messages AS (
  SELECT
    COALESCE(s.message_id, r.message_id) AS message_id,
    CAST(NULL AS STRING) AS bad_file,
    CAST(NULL AS STRING) AS problem,
    COALESCE(s.send_attempts, 0) + COALESCE(r.outbox_lines, 0) AS outbox_lines,
    COALESCE(s.send_attempts, 0) AS send_attempts,
    s.chosen,
    COALESCE(r.api_revoke_attempts, 0) AS api_revoke_attempts,
    r.api_revoke_first_at,
    r.api_revoked_at,
    r.api_refused_at,
    COALESCE(r.api_revoke_errors, 0) AS api_revoke_errors,
    COALESCE(r.fallbacks, 0) AS fallbacks,
    r.fallback_at,
    CASE
      WHEN r.first_outbox_at IS NULL OR s.first_outbox_at <= r.first_outbox_at
      THEN s.first_outbox_at
      ELSE r.first_outbox_at
    END AS first_outbox_at,
    CASE
      WHEN r.last_outbox_at IS NULL OR s.last_outbox_at >= r.last_outbox_at
      THEN s.last_outbox_at
      ELSE r.last_outbox_at
    END AS last_outbox_at
  FROM rbm_outbox_sends AS s
  FULL OUTER JOIN rbm_outbox_others AS r
    ON s.message_id = r.message_id
  UNION ALL
  SELECT
    CAST(NULL AS STRING) AS message_id,
    source_file AS bad_file,
    problem,
    COUNT(*) AS outbox_lines,
    COUNTIF(kind = 'send') AS send_attempts,
    ARRAY_AGG(
      IF(
        (
          kind = 'send'
        )
        AND (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        STRUCT(
          sendTime AS send_time,
          status AS send_status,
          expireTime AS expire_time,
          ttl AS ttl,
          useCase AS use_case,
          trafficType AS traffic_type,
          experiment AS experiment,
          arm AS arm,
          policyVersion AS policy_version
        ),
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'send'
        )
        AND (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        0,
        1
      ), (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL, (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS chosen,
    COUNTIF(kind = 'revoke') AS api_revoke_attempts,
    MIN(IF(kind = 'revoke', requestedAt, NULL)) AS api_revoke_first_at,
    MIN(IF(kind = 'revoke' AND status = 200, requestedAt, NULL)) AS api_revoked_at,
    MIN(IF(kind = 'revoke' AND status = 404, requestedAt, NULL)) AS api_refused_at,
    COUNTIF(kind = 'revoke' AND NOT status IN (200, 404)) AS api_revoke_errors,
    COUNTIF(kind = 'fallback') AS fallbacks,
    MIN(IF(kind = 'fallback', sentAt, NULL)) AS fallback_at,
    MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
    MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    NOT ok
  GROUP BY
    source_file,
    problem
), rbm_facts_core AS (
  SELECT
    CASE
      WHEN NOT o.bad_file IS NULL
      THEN 'malformed_outbox_lines'
      WHEN e.row_class <> 'message'
      THEN e.row_class
      WHEN o.send_attempts > 0 AND o.chosen.send_status IN (200, 404)
      THEN 'message'
      WHEN o.send_attempts > 0
      THEN 'failed_send'
      WHEN NOT o.message_id IS NULL
      THEN 'outbox_without_send'
      ELSE 'unknown_message'
    END AS row_kind,
    COALESCE(o.message_id, e.message_id) AS message_id,
    COALESCE(e.bad_file, o.bad_file) AS bad_file,
    COALESCE(e.problem, o.problem) AS problem,
    e.delivered_at,
    e.read_at,
    e.ttl_revoked_at,
    e.ttl_failed_at,
    e.events,
    e.lines,
    e.unverified,
    e.first_event_at,
    e.last_event_at,
    e.first_event_rx,
    e.first_received_at,
    e.last_received_at,
    o.chosen.send_time AS send_time,
    o.chosen.send_status AS send_status,
    o.chosen.expire_time AS expire_time,
    SAFE_CAST(REPLACE(o.chosen.ttl, 's', '') AS FLOAT64) AS ttl_seconds,
    o.chosen.use_case AS use_case,
    o.chosen.traffic_type AS traffic_type,
    o.chosen.experiment AS experiment,
    o.chosen.arm AS arm,
    o.chosen.policy_version AS policy_version,
    o.send_attempts,
    o.api_revoke_attempts,
    o.api_revoke_first_at,
    o.api_revoked_at,
    o.api_refused_at,
    o.api_revoke_errors,
    o.fallbacks,
    o.fallback_at,
    o.outbox_lines,
    o.first_outbox_at,
    o.last_outbox_at
  FROM rbm_outbox_messages AS o
  FULL OUTER JOIN rbm_message_events AS e
    ON o.message_id = e.message_id
), rbm_timed AS (
  SELECT
    f.*,
    CAST(NULL AS TIMESTAMP) AS observed_until,
    LEAST(COALESCE(api_revoked_at, ttl_revoked_at), COALESCE(ttl_revoked_at, api_revoked_at)) AS revoke_ok_at,
    LEAST(COALESCE(ttl_revoked_at, ttl_failed_at), COALESCE(ttl_failed_at, ttl_revoked_at)) AS ttl_event_at,
    COALESCE(
      (
        (
          UNIX_MICROS(expire_time) - UNIX_MICROS(send_time)
        ) / 1000000.0
      ),
      ttl_seconds
    ) AS expires_after,
    COALESCE(
      UNIX_MICROS(first_event_at) < UNIX_MICROS(send_time) - 60000000
      OR UNIX_MICROS(last_event_at) > UNIX_MICROS(send_time) + 2678400000000,
      FALSE
    ) AS implausible
  FROM rbm_facts_core AS f
  WHERE
    TRUE
), rbm_ruled AS (
  SELECT
    *,
    CASE
      WHEN send_status = 404
      THEN 'not_rcs'
      WHEN NOT delivered_at IS NULL
      AND NOT revoke_ok_at IS NULL
      AND revoke_ok_at <= delivered_at
      THEN 'delivered_after_revoke'
      WHEN NOT delivered_at IS NULL
      THEN 'delivered'
      WHEN NOT revoke_ok_at IS NULL
      THEN 'revoked'
      WHEN NOT api_refused_at IS NULL OR NOT ttl_failed_at IS NULL
      THEN 'revoke_failed_undelivered'
      ELSE 'pending'
    END AS outcome,
    CASE
      WHEN api_revoke_attempts > 0
      AND (
        ttl_event_at IS NULL OR api_revoke_first_at <= ttl_event_at
      )
      THEN 'api'
      WHEN NOT ttl_event_at IS NULL
      THEN 'ttl'
      WHEN api_revoke_attempts > 0
      THEN 'api'
    END AS revoke_method,
    CASE
      WHEN NOT implausible
      THEN GREATEST(
        COALESCE(
          (
            (
              UNIX_MICROS(delivered_at) - UNIX_MICROS(send_time)
            ) / 1000000.0
          ),
          0.0
        ),
        COALESCE(
          0.0,
          (
            (
              UNIX_MICROS(delivered_at) - UNIX_MICROS(send_time)
            ) / 1000000.0
          )
        )
      )
    END AS latency,
    CASE
      WHEN NOT implausible
      THEN GREATEST(
        COALESCE(
          LEAST(
            COALESCE(
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              expires_after,
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after
            )
          ),
          0.0
        ),
        COALESCE(
          0.0,
          LEAST(
            COALESCE(
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              expires_after,
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after
            )
          )
        )
      )
    END AS censored_after,
    LEAST(
      COALESCE(
        CASE WHEN NOT implausible THEN first_event_at END,
        first_received_at,
        first_outbox_at
      ),
      COALESCE(
        first_received_at,
        CASE WHEN NOT implausible THEN first_event_at END,
        first_outbox_at
      ),
      COALESCE(
        first_outbox_at,
        CASE WHEN NOT implausible THEN first_event_at END,
        first_received_at
      )
    ) AS first_seen_at,
    GREATEST(
      COALESCE(CASE WHEN NOT implausible THEN last_event_at END, last_received_at, last_outbox_at),
      COALESCE(last_received_at, CASE WHEN NOT implausible THEN last_event_at END, last_outbox_at),
      COALESCE(last_outbox_at, CASE WHEN NOT implausible THEN last_event_at END, last_received_at)
    ) AS last_seen_at,
    GREATEST(
      COALESCE(last_received_at, last_outbox_at),
      COALESCE(last_outbox_at, last_received_at)
    ) AS last_anchor_at
  FROM rbm_timed
), rbm_summary_rows AS (
  SELECT
    row_kind,
    bad_file,
    problem,
    lines,
    events AS fact_events,
    unverified,
    outbox_lines,
    first_seen_at,
    last_seen_at,
    last_anchor_at,
    fallbacks,
    send_time,
    expires_after,
    use_case AS `useCase`,
    traffic_type AS `trafficType`,
    experiment AS `experiment`,
    arm AS `arm`,
    policy_version AS `policyVersion`,
    CAST(send_time AS DATE) AS `day`,
    outcome AS `outcome`,
    revoke_method AS `revokeMethod`,
    outcome IN ('delivered', 'delivered_after_revoke') AS `delivered`,
    CASE
      WHEN outcome = 'not_rcs'
      THEN NULL
      WHEN outcome IN ('delivered', 'delivered_after_revoke')
      THEN latency
      ELSE censored_after
    END AS `observedSeconds`,
    COALESCE(
      outcome IN ('delivered', 'delivered_after_revoke') AND latency > expires_after,
      FALSE
    ) AS `staleDelivery`,
    COALESCE(
      outcome IN ('delivered', 'delivered_after_revoke') AND delivered_at > fallback_at,
      FALSE
    ) AS `doubleDelivery`,
    CASE
      WHEN outcome IN ('delivered', 'delivered_after_revoke')
      AND NOT read_at IS NULL
      AND NOT implausible
      THEN GREATEST(
        COALESCE((
          (
            UNIX_MICROS(read_at) - UNIX_MICROS(delivered_at)
          ) / 1000000.0
        ), 0.0),
        COALESCE(0.0, (
          (
            UNIX_MICROS(read_at) - UNIX_MICROS(delivered_at)
          ) / 1000000.0
        ))
      )
    END AS `readSeconds`,
    CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS INT64) AS `duplicateEvents`,
    COALESCE(first_event_at < send_time AND NOT implausible, FALSE) AS `clockSkew`,
    COALESCE(first_event_rx > first_received_at, FALSE) AS `outOfOrder`,
    implausible AS `implausibleTime`
  FROM rbm_ruled
)
SELECT
  CASE
    WHEN GROUPING(outcome) = 0
    THEN 'counts'
    WHEN GROUPING(latency_bin) = 0
    THEN 'latency'
    ELSE 'read'
  END AS part,
  row_kind,
  bad_file,
  problem,
  `useCase`,
  `trafficType`,
  `experiment`,
  `arm`,
  `policyVersion`,
  `day`,
  outcome,
  `revokeMethod`,
  flag_read,
  flag_stale,
  flag_double,
  flag_fallback,
  flag_skew,
  flag_unordered,
  flag_implausible,
  latency_bin,
  delivered,
  pending_since,
  pending_expires,
  read_bin,
  COUNT(*) AS n,
  SUM(`duplicateEvents`) AS duplicates,
  SUM(lines) AS lines,
  SUM(fact_events) AS events,
  SUM(unverified) AS unverified,
  SUM(outbox_lines) AS outbox_lines,
  MIN(first_seen_at) AS first_seen_at,
  MAX(last_seen_at) AS last_seen_at,
  MAX(last_anchor_at) AS last_anchor_at
FROM (
  SELECT
    *,
    NOT `readSeconds` IS NULL AS flag_read,
    `staleDelivery` AS flag_stale,
    `doubleDelivery` AS flag_double,
    fallbacks > 0 AS flag_fallback,
    `clockSkew` AS flag_skew,
    `outOfOrder` AS flag_unordered,
    `implausibleTime` AS flag_implausible,
    CASE
      WHEN NOT outcome IN ('not_rcs', 'pending')
      THEN CASE
        WHEN `observedSeconds` <= 0.001
        THEN 0
        ELSE CAST(FLOOR(LOG(`observedSeconds` / 0.001, 10) * 500) AS INT64) + 1
      END
    END AS latency_bin,
    CASE WHEN outcome = 'pending' AND NOT `implausibleTime` THEN send_time END AS pending_since,
    CASE WHEN outcome = 'pending' AND NOT `implausibleTime` THEN expires_after END AS pending_expires,
    CASE
      WHEN `readSeconds` <= 0.001
      THEN 0
      ELSE CAST(FLOOR(LOG(`readSeconds` / 0.001, 10) * 500) AS INT64) + 1
    END AS read_bin
  FROM rbm_summary_rows
) AS rbm_summary_input
GROUP BY
  GROUPING SETS (
    (
      row_kind,
      bad_file,
      problem,
      `useCase`,
      `trafficType`,
      `experiment`,
      `arm`,
      `policyVersion`,
      `day`,
      outcome,
      `revokeMethod`,
      flag_read,
      flag_stale,
      flag_double,
      flag_fallback,
      flag_skew,
      flag_unordered,
      flag_implausible
    ),
    (
      row_kind,
      `useCase`,
      `trafficType`,
      `experiment`,
      `arm`,
      `policyVersion`,
      `day`,
      latency_bin,
      delivered,
      pending_since,
      pending_expires
    ),
    (
      row_kind,
      `useCase`,
      `trafficType`,
      `experiment`,
      `arm`,
      `policyVersion`,
      `day`,
      read_bin
    )
  );

SELECT
  CAST(COALESCE(SUM(lines), 0) AS INT64) AS lines,
  CAST(COALESCE(SUM(events), 0) AS INT64) AS events,
  CAST(COALESCE(SUM(IF(row_kind <> 'malformed_event_lines', lines, NULL)), 0) - COALESCE(SUM(events), 0) AS INT64) AS duplicates,
  CAST(COALESCE(SUM(IF(row_kind = 'malformed_event_lines', lines, NULL)), 0) AS INT64) AS malformed,
  CAST(COALESCE(SUM(unverified), 0) AS INT64) AS unverified,
  CAST(COALESCE(SUM(IF(row_kind = 'other_events', events, NULL)), 0) AS INT64) AS other_events,
  CAST(COALESCE(SUM(IF(row_kind = 'unknown_message', events, NULL)), 0) AS INT64) AS unknown_message_events,
  CAST(COALESCE(SUM(IF(row_kind = 'unknown_message', n, NULL)), 0) AS INT64) AS unknown_messages,
  CAST(COALESCE(SUM(IF(row_kind <> 'malformed_outbox_lines', outbox_lines, NULL)), 0) AS INT64) AS outbox_records,
  CAST(COALESCE(SUM(IF(row_kind = 'malformed_outbox_lines', outbox_lines, NULL)), 0) AS INT64) AS outbox_malformed,
  CAST(COALESCE(SUM(IF(row_kind = 'message', n, NULL)), 0) AS INT64) AS messages,
  CAST(COALESCE(SUM(IF(row_kind = 'failed_send', n, NULL)), 0) AS INT64) AS failed_sends,
  CAST(COALESCE(SUM(IF(row_kind = 'outbox_without_send', n, NULL)), 0) AS INT64) AS outbox_without_send,
  CAST(COALESCE(SUM(IF(row_kind = 'message' AND flag_implausible, n, NULL)), 0) AS INT64) AS implausible_times,
  MIN(first_seen_at) AS span_start,
  LEAST(
    COALESCE(MAX(last_seen_at), MAX(last_anchor_at) + INTERVAL '1' DAY),
    COALESCE(MAX(last_anchor_at) + INTERVAL '1' DAY, MAX(last_seen_at))
  ) AS span_end
FROM rbm_summary
WHERE
  part = 'counts';

SELECT
  `useCase`,
  `arm`,
  CAST(COALESCE(SUM(n), 0) AS INT64) AS messages,
  CAST(COALESCE(SUM(IF(outcome = 'delivered', n, NULL)), 0) AS INT64) AS delivered,
  CAST(COALESCE(SUM(IF(outcome = 'delivered_after_revoke', n, NULL)), 0) AS INT64) AS delivered_after_revoke,
  CAST(COALESCE(SUM(IF(outcome = 'revoked', n, NULL)), 0) AS INT64) AS revoked,
  CAST(COALESCE(SUM(IF(outcome = 'revoke_failed_undelivered', n, NULL)), 0) AS INT64) AS revoke_failed_undelivered,
  CAST(COALESCE(SUM(IF(outcome = 'pending', n, NULL)), 0) AS INT64) AS pending,
  CAST(COALESCE(SUM(IF(outcome = 'not_rcs', n, NULL)), 0) AS INT64) AS not_rcs,
  CAST(COALESCE(SUM(IF(NOT `revokeMethod` IS NULL, n, NULL)), 0) AS INT64) AS revoke_tried,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api', n, NULL)), 0) AS INT64) AS api_tried,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'revoked', n, NULL)), 0) AS INT64) AS api_revoked,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl', n, NULL)), 0) AS INT64) AS ttl_tried,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'revoked', n, NULL)), 0) AS INT64) AS ttl_revoked,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'delivered', n, NULL)), 0) AS INT64) AS api_outcome_delivered,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'delivered_after_revoke', n, NULL)), 0) AS INT64) AS api_outcome_delivered_after_revoke,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'revoked', n, NULL)), 0) AS INT64) AS api_outcome_revoked,
  CAST(COALESCE(
    SUM(IF(`revokeMethod` = 'api' AND outcome = 'revoke_failed_undelivered', n, NULL)),
    0
  ) AS INT64) AS api_outcome_revoke_failed_undelivered,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'pending', n, NULL)), 0) AS INT64) AS api_outcome_pending,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'api' AND outcome = 'not_rcs', n, NULL)), 0) AS INT64) AS api_outcome_not_rcs,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'delivered', n, NULL)), 0) AS INT64) AS ttl_outcome_delivered,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'delivered_after_revoke', n, NULL)), 0) AS INT64) AS ttl_outcome_delivered_after_revoke,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'revoked', n, NULL)), 0) AS INT64) AS ttl_outcome_revoked,
  CAST(COALESCE(
    SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'revoke_failed_undelivered', n, NULL)),
    0
  ) AS INT64) AS ttl_outcome_revoke_failed_undelivered,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'pending', n, NULL)), 0) AS INT64) AS ttl_outcome_pending,
  CAST(COALESCE(SUM(IF(`revokeMethod` = 'ttl' AND outcome = 'not_rcs', n, NULL)), 0) AS INT64) AS ttl_outcome_not_rcs,
  CAST(COALESCE(SUM(IF(flag_read, n, NULL)), 0) AS INT64) AS read,
  CAST(COALESCE(SUM(IF(flag_stale, n, NULL)), 0) AS INT64) AS stale_deliveries,
  CAST(COALESCE(SUM(IF(flag_double, n, NULL)), 0) AS INT64) AS double_deliveries,
  CAST(COALESCE(SUM(IF(flag_fallback, n, NULL)), 0) AS INT64) AS fallbacks,
  CAST(COALESCE(SUM(IF(outcome = 'not_rcs' AND flag_fallback, n, NULL)), 0) AS INT64) AS not_rcs_fallbacks,
  CAST(COALESCE(SUM(IF(flag_skew, n, NULL)), 0) AS INT64) AS clock_skew,
  CAST(COALESCE(SUM(IF(flag_unordered, n, NULL)), 0) AS INT64) AS out_of_order,
  CAST(COALESCE(SUM(IF(flag_implausible, n, NULL)), 0) AS INT64) AS implausible_times,
  CAST(COALESCE(SUM(duplicates), 0) AS INT64) AS duplicate_events
FROM rbm_summary
WHERE
  part = 'counts' AND row_kind = 'message'
GROUP BY
  `useCase`,
  `arm`
ORDER BY
  `useCase` NULLS LAST,
  `arm` NULLS LAST;

WITH rbm_span AS (
  SELECT
    LEAST(
      COALESCE(MAX(last_seen_at), MAX(last_anchor_at) + INTERVAL '1' DAY),
      COALESCE(MAX(last_anchor_at) + INTERVAL '1' DAY, MAX(last_seen_at))
    ) AS observed_until
  FROM rbm_summary
  WHERE
    part = 'counts'
), rbm_binned AS (
  SELECT
    `useCase`,
    `trafficType`,
    `experiment`,
    `arm`,
    `policyVersion`,
    `day`,
    latency_bin AS bin,
    delivered,
    n
  FROM rbm_summary
  WHERE
    part = 'latency' AND row_kind = 'message' AND NOT latency_bin IS NULL
  UNION ALL
  SELECT
    `useCase`,
    `trafficType`,
    `experiment`,
    `arm`,
    `policyVersion`,
    `day`,
    CASE
      WHEN GREATEST(
        COALESCE(
          LEAST(
            COALESCE(
              pending_expires,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                ) / 1000000.0
              ),
              pending_expires
            )
          ),
          0.0
        ),
        COALESCE(
          0.0,
          LEAST(
            COALESCE(
              pending_expires,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                ) / 1000000.0
              ),
              pending_expires
            )
          )
        )
      ) <= 0.001
      THEN 0
      ELSE CAST(FLOOR(
        LOG(
          GREATEST(
            COALESCE(
              LEAST(
                COALESCE(
                  pending_expires,
                  (
                    (
                      UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                    ) / 1000000.0
                  )
                ),
                COALESCE(
                  (
                    (
                      UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                    ) / 1000000.0
                  ),
                  pending_expires
                )
              ),
              0.0
            ),
            COALESCE(
              0.0,
              LEAST(
                COALESCE(
                  pending_expires,
                  (
                    (
                      UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                    ) / 1000000.0
                  )
                ),
                COALESCE(
                  (
                    (
                      UNIX_MICROS(observed_until) - UNIX_MICROS(pending_since)
                    ) / 1000000.0
                  ),
                  pending_expires
                )
              )
            )
          ) / 0.001,
          10
        ) * 500
      ) AS INT64) + 1
    END AS bin,
    FALSE AS delivered,
    n
  FROM rbm_summary
  CROSS JOIN rbm_span
  WHERE
    part = 'latency' AND row_kind = 'message' AND NOT pending_since IS NULL
)
SELECT
  `useCase`,
  `arm`,
  bin,
  CAST(COALESCE(SUM(IF(delivered, n, NULL)), 0) AS INT64) AS delivered,
  CAST(COALESCE(SUM(IF(NOT delivered, n, NULL)), 0) AS INT64) AS censored
FROM rbm_binned
GROUP BY
  `useCase`,
  `arm`,
  bin;

SELECT
  `useCase`,
  `arm`,
  read_bin AS bin,
  CAST(COALESCE(SUM(n), 0) AS INT64) AS read
FROM rbm_summary
WHERE
  part = 'read' AND row_kind = 'message' AND NOT read_bin IS NULL
GROUP BY
  `useCase`,
  `arm`,
  read_bin;

CREATE TEMP TABLE rbm_facts AS
WITH rbm_event_shapes AS (
  SELECT
    source_file,
    verified,
    receivedAt,
    event,
    message,
    senderPhoneNumber,
    phoneNumber,
    messageId,
    eventId,
    sendTime,
    eventType,
    send_time_typed,
    received_at_typed,
    CASE WHEN NOT message.data IS NULL THEN rbm_decode_push(message.data) END AS push_event
  FROM rbm_event_rows
), rbm_event_text AS (
  SELECT
    source_file,
    verified,
    COALESCE(event.messageId, messageId, push_event.messageId) AS message_id,
    COALESCE(event.eventId, eventId, push_event.eventId) AS event_id,
    COALESCE(event.eventType, eventType, push_event.eventType) AS event_type,
    COALESCE(event.senderPhoneNumber, senderPhoneNumber, push_event.senderPhoneNumber) AS sender_phone,
    COALESCE(event.phoneNumber, phoneNumber, push_event.phoneNumber) AS server_phone,
    COALESCE(event.sendTime, sendTime, push_event.sendTime) AS send_text,
    COALESCE(receivedAt, message.publishTime) AS received_text,
    send_time_typed,
    received_at_typed
  FROM rbm_event_shapes
), rbm_events AS (
  SELECT
    source_file,
    verified,
    message_id,
    event_id,
    event_type,
    sender_phone,
    server_phone,
    send_text,
    received_text,
    COALESCE(send_time_typed, rbm_time(send_text)) AS send_time,
    COALESCE(received_at_typed, rbm_time(received_text)) AS received_at
  FROM rbm_event_text
), rbm_shaped AS (
  SELECT
    *,
    CASE
      WHEN NOT sender_phone IS NULL AND NOT event_type IS NULL AND NOT message_id IS NULL
      THEN 'message'
      WHEN NOT sender_phone IS NULL
      AND (
        NOT event_type IS NULL OR NOT message_id IS NULL
      )
      THEN 'other'
      WHEN NOT server_phone IS NULL AND NOT event_type IS NULL AND NOT message_id IS NULL
      THEN 'message'
      WHEN NOT server_phone IS NULL AND NOT event_type IS NULL
      THEN 'other'
      ELSE 'malformed'
    END AS shape,
    (
      NOT send_text IS NULL AND send_time IS NULL
    )
    OR (
      NOT received_text IS NULL AND received_at IS NULL
    ) AS bad_time
  FROM rbm_events
), rbm_classified AS (
  SELECT
    source_file,
    verified,
    message_id,
    event_id,
    event_type,
    sender_phone,
    server_phone,
    send_time,
    received_at,
    CASE
      WHEN bad_time
      THEN 'malformed'
      WHEN shape = 'message'
      AND send_time IS NULL
      AND event_type IN ('DELIVERED', 'READ', 'TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED')
      THEN 'malformed'
      ELSE shape
    END AS cls,
    CASE
      WHEN bad_time
      THEN 'unreadable time'
      WHEN shape = 'malformed' AND INSTR(source_file, '/_other/') > 0
      THEN 'kept in the other log of the receiver'
      WHEN shape = 'malformed'
      THEN 'not an event'
      WHEN shape = 'message'
      AND send_time IS NULL
      AND event_type IN ('DELIVERED', 'READ', 'TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED')
      THEN 'lifecycle event without sendTime'
    END AS problem
  FROM rbm_shaped
), rbm_event_keys AS (
  SELECT
    cls,
    CASE WHEN cls = 'message' THEN message_id END AS message_id,
    CASE WHEN cls = 'malformed' THEN source_file END AS bad_file,
    problem,
    CASE
      WHEN cls = 'malformed'
      THEN 0
      ELSE CASE
        WHEN NOT event_id IS NULL
        THEN FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_id)))
        ELSE FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_type, send_time)))
      END
    END AS event_key,
    MIN(
      CASE
        WHEN event_type = 'DELIVERED'
        THEN 2
        WHEN event_type < 'DELIVERED'
        THEN 1
        WHEN event_type = 'READ'
        THEN 4
        WHEN event_type < 'READ'
        THEN 3
        WHEN event_type = 'TTL_EXPIRATION_REVOKED'
        THEN 6
        WHEN event_type < 'TTL_EXPIRATION_REVOKED'
        THEN 5
        WHEN event_type = 'TTL_EXPIRATION_REVOKE_FAILED'
        THEN 8
        WHEN event_type < 'TTL_EXPIRATION_REVOKE_FAILED'
        THEN 7
        WHEN NOT event_type IS NULL
        THEN 9
      END
    ) AS type_code,
    MIN(send_time) AS send_time,
    MAX(send_time) AS last_send_time,
    MIN(received_at) AS received_at,
    MAX(received_at) AS last_received_at,
    COUNT(*) AS copies,
    COUNTIF(verified = FALSE) AS unverified
  FROM rbm_classified
  GROUP BY
    cls,
    rbm_classified.message_id,
    event_key,
    CASE WHEN cls = 'malformed' THEN source_file END,
    problem
), rbm_message_events AS (
  SELECT
    CASE cls
      WHEN 'message'
      THEN 'message'
      WHEN 'other'
      THEN 'other_events'
      ELSE 'malformed_event_lines'
    END AS row_class,
    message_id,
    bad_file,
    problem,
    MIN(IF(type_code = 2, send_time, NULL)) AS delivered_at,
    MIN(IF(type_code = 4, send_time, NULL)) AS read_at,
    MIN(IF(type_code = 6, send_time, NULL)) AS ttl_revoked_at,
    MIN(IF(type_code = 8, send_time, NULL)) AS ttl_failed_at,
    CASE WHEN cls = 'malformed' THEN 0 ELSE COUNT(*) END AS events,
    SUM(copies) AS lines,
    SUM(unverified) AS unverified,
    MIN(send_time) AS first_event_at,
    MAX(last_send_time) AS last_event_at,
    ARRAY_AGG(
      IF((
        NOT received_at IS NULL
      ), received_at, NULL) IGNORE NULLS ORDER BY IF((
        NOT received_at IS NULL
      ), 0, 1), send_time IS NULL, send_time ASC, received_at IS NULL, received_at ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS first_event_rx,
    MIN(received_at) AS first_received_at,
    MAX(last_received_at) AS last_received_at
  FROM rbm_event_keys
  GROUP BY
    cls,
    message_id,
    bad_file,
    problem
), rbm_outbox_read AS (
  SELECT
    source_file,
    kind,
    messageId,
    phone,
    agentId,
    useCase,
    trafficType,
    ttl,
    status,
    experiment,
    arm,
    error,
    attempt,
    channel,
    reason,
    policyVersion,
    sendTime AS sendTime_text,
    COALESCE(send_time_typed, rbm_time(sendTime)) AS sendTime_at,
    expireTime AS expireTime_text,
    COALESCE(expire_time_typed, rbm_time(expireTime)) AS expireTime_at,
    requestedAt AS requestedAt_text,
    COALESCE(requested_at_typed, rbm_time(requestedAt)) AS requestedAt_at,
    sentAt AS sentAt_text,
    COALESCE(sent_at_typed, rbm_time(sentAt)) AS sentAt_at
  FROM rbm_outbox_rows
), rbm_outbox_checked AS (
  SELECT
    source_file,
    kind,
    messageId,
    phone,
    agentId,
    useCase,
    trafficType,
    ttl,
    status,
    experiment,
    arm,
    error,
    attempt,
    channel,
    reason,
    policyVersion,
    sendTime_at AS sendTime,
    expireTime_at AS expireTime,
    requestedAt_at AS requestedAt,
    sentAt_at AS sentAt,
    (
      NOT sendTime_text IS NULL AND sendTime_at IS NULL
    )
    OR (
      NOT expireTime_text IS NULL AND expireTime_at IS NULL
    )
    OR (
      NOT requestedAt_text IS NULL AND requestedAt_at IS NULL
    )
    OR (
      NOT sentAt_text IS NULL AND sentAt_at IS NULL
    ) AS bad_time
  FROM rbm_outbox_read
), rbm_outbox AS (
  SELECT
    *,
    CASE
      WHEN bad_time
      THEN FALSE
      WHEN kind = 'send'
      THEN NOT messageId IS NULL AND NOT sendTime IS NULL AND NOT status IS NULL
      WHEN kind = 'revoke'
      THEN NOT messageId IS NULL AND NOT requestedAt IS NULL AND NOT status IS NULL
      WHEN kind = 'fallback'
      THEN NOT messageId IS NULL AND NOT sentAt IS NULL
      ELSE FALSE
    END AS ok,
    CASE WHEN bad_time THEN 'unreadable time' ELSE 'not an outbox record' END AS problem
  FROM rbm_outbox_checked
), rbm_outbox_sends AS (
  SELECT
    messageId AS message_id,
    COUNT(*) AS send_attempts,
    ARRAY_AGG(
      IF(
        (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version,
            agentId AS agent_id,
            phone AS phone
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        STRUCT(
          sendTime AS send_time,
          status AS send_status,
          expireTime AS expire_time,
          ttl AS ttl,
          useCase AS use_case,
          trafficType AS traffic_type,
          experiment AS experiment,
          arm AS arm,
          policyVersion AS policy_version,
          agentId AS agent_id,
          phone AS phone
        ),
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version,
            agentId AS agent_id,
            phone AS phone
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        0,
        1
      ), (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL, (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS chosen,
    MIN(
      (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime)
    ) AS chosen_rank,
    MIN(sendTime) AS first_outbox_at,
    MAX(sendTime) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    ok AND kind = 'send'
  GROUP BY
    messageId
), rbm_outbox_others AS (
  SELECT
    messageId AS message_id,
    COUNT(*) AS outbox_lines,
    COUNTIF(kind = 'revoke') AS api_revoke_attempts,
    MIN(IF(kind = 'revoke', requestedAt, NULL)) AS api_revoke_first_at,
    MIN(IF(kind = 'revoke' AND status = 200, requestedAt, NULL)) AS api_revoked_at,
    MIN(IF(kind = 'revoke' AND status = 404, requestedAt, NULL)) AS api_refused_at,
    COUNTIF(kind = 'revoke' AND NOT status IN (200, 404)) AS api_revoke_errors,
    COUNTIF(kind = 'fallback') AS fallbacks,
    MIN(IF(kind = 'fallback', sentAt, NULL)) AS fallback_at,
    ARRAY_AGG(
      IF(
        (
          kind = 'fallback'
        ) AND (
          NOT channel IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        channel,
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'fallback'
        ) AND (
          NOT channel IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        0,
        1
      ), sentAt IS NULL, sentAt ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_channel,
    ARRAY_AGG(
      IF(
        (
          kind = 'fallback'
        ) AND (
          NOT reason IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        reason,
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'fallback'
        ) AND (
          NOT reason IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        0,
        1
      ), sentAt IS NULL, sentAt ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_reason,
    MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
    MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    ok AND kind <> 'send'
  GROUP BY
    messageId
), rbm_outbox_messages AS (
  SELECT
    COALESCE(s.message_id, r.message_id) AS message_id,
    CAST(NULL AS STRING) AS bad_file,
    CAST(NULL AS STRING) AS problem,
    COALESCE(s.send_attempts, 0) + COALESCE(r.outbox_lines, 0) AS outbox_lines,
    COALESCE(s.send_attempts, 0) AS send_attempts,
    s.chosen,
    COALESCE(r.api_revoke_attempts, 0) AS api_revoke_attempts,
    r.api_revoke_first_at,
    r.api_revoked_at,
    r.api_refused_at,
    COALESCE(r.api_revoke_errors, 0) AS api_revoke_errors,
    COALESCE(r.fallbacks, 0) AS fallbacks,
    r.fallback_at,
    r.fallback_channel,
    r.fallback_reason,
    CASE
      WHEN r.first_outbox_at IS NULL OR s.first_outbox_at <= r.first_outbox_at
      THEN s.first_outbox_at
      ELSE r.first_outbox_at
    END AS first_outbox_at,
    CASE
      WHEN r.last_outbox_at IS NULL OR s.last_outbox_at >= r.last_outbox_at
      THEN s.last_outbox_at
      ELSE r.last_outbox_at
    END AS last_outbox_at
  FROM rbm_outbox_sends AS s
  FULL OUTER JOIN rbm_outbox_others AS r
    ON s.message_id = r.message_id
  UNION ALL
  SELECT
    CAST(NULL AS STRING) AS message_id,
    source_file AS bad_file,
    problem,
    COUNT(*) AS outbox_lines,
    COUNTIF(kind = 'send') AS send_attempts,
    ARRAY_AGG(
      IF(
        (
          kind = 'send'
        )
        AND (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version,
            agentId AS agent_id,
            phone AS phone
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        STRUCT(
          sendTime AS send_time,
          status AS send_status,
          expireTime AS expire_time,
          ttl AS ttl,
          useCase AS use_case,
          trafficType AS traffic_type,
          experiment AS experiment,
          arm AS arm,
          policyVersion AS policy_version,
          agentId AS agent_id,
          phone AS phone
        ),
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'send'
        )
        AND (
          NOT STRUCT(
            sendTime AS send_time,
            status AS send_status,
            expireTime AS expire_time,
            ttl AS ttl,
            useCase AS use_case,
            trafficType AS traffic_type,
            experiment AS experiment,
            arm AS arm,
            policyVersion AS policy_version,
            agentId AS agent_id,
            phone AS phone
          ) IS NULL
        )
        AND (
          NOT (
            CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
          ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL
        ),
        0,
        1
      ), (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) IS NULL, (
        CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END
      ) * 1000000000000000000 + UNIX_MICROS(sendTime) ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS chosen,
    COUNTIF(kind = 'revoke') AS api_revoke_attempts,
    MIN(IF(kind = 'revoke', requestedAt, NULL)) AS api_revoke_first_at,
    MIN(IF(kind = 'revoke' AND status = 200, requestedAt, NULL)) AS api_revoked_at,
    MIN(IF(kind = 'revoke' AND status = 404, requestedAt, NULL)) AS api_refused_at,
    COUNTIF(kind = 'revoke' AND NOT status IN (200, 404)) AS api_revoke_errors,
    COUNTIF(kind = 'fallback') AS fallbacks,
    MIN(IF(kind = 'fallback', sentAt, NULL)) AS fallback_at,
    ARRAY_AGG(
      IF(
        (
          kind = 'fallback'
        ) AND (
          NOT channel IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        channel,
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'fallback'
        ) AND (
          NOT channel IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        0,
        1
      ), sentAt IS NULL, sentAt ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_channel,
    ARRAY_AGG(
      IF(
        (
          kind = 'fallback'
        ) AND (
          NOT reason IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        reason,
        NULL
      ) IGNORE NULLS ORDER BY IF(
        (
          kind = 'fallback'
        ) AND (
          NOT reason IS NULL
        ) AND (
          NOT sentAt IS NULL
        ),
        0,
        1
      ), sentAt IS NULL, sentAt ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_reason,
    MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
    MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
  FROM rbm_outbox
  WHERE
    NOT ok
  GROUP BY
    source_file,
    problem
)
SELECT
  CASE
    WHEN NOT o.bad_file IS NULL
    THEN 'malformed_outbox_lines'
    WHEN e.row_class <> 'message'
    THEN e.row_class
    WHEN o.send_attempts > 0 AND o.chosen.send_status IN (200, 404)
    THEN 'message'
    WHEN o.send_attempts > 0
    THEN 'failed_send'
    WHEN NOT o.message_id IS NULL
    THEN 'outbox_without_send'
    ELSE 'unknown_message'
  END AS row_kind,
  COALESCE(o.message_id, e.message_id) AS message_id,
  COALESCE(e.bad_file, o.bad_file) AS bad_file,
  COALESCE(e.problem, o.problem) AS problem,
  e.delivered_at,
  e.read_at,
  e.ttl_revoked_at,
  e.ttl_failed_at,
  e.events,
  e.lines,
  e.unverified,
  e.first_event_at,
  e.last_event_at,
  e.first_event_rx,
  e.first_received_at,
  e.last_received_at,
  o.chosen.send_time AS send_time,
  o.chosen.send_status AS send_status,
  o.chosen.expire_time AS expire_time,
  SAFE_CAST(REPLACE(o.chosen.ttl, 's', '') AS FLOAT64) AS ttl_seconds,
  o.chosen.use_case AS use_case,
  o.chosen.traffic_type AS traffic_type,
  o.chosen.experiment AS experiment,
  o.chosen.arm AS arm,
  o.chosen.policy_version AS policy_version,
  o.send_attempts,
  o.api_revoke_attempts,
  o.api_revoke_first_at,
  o.api_revoked_at,
  o.api_refused_at,
  o.api_revoke_errors,
  o.fallbacks,
  o.fallback_at,
  o.outbox_lines,
  o.first_outbox_at,
  o.last_outbox_at,
  o.chosen.agent_id AS agent_id,
  o.chosen.phone AS phone,
  o.fallback_channel,
  o.fallback_reason
FROM rbm_outbox_messages AS o
FULL OUTER JOIN rbm_message_events AS e
  ON o.message_id = e.message_id;

WITH rbm_span AS (
  SELECT
    LEAST(
      COALESCE(MAX(last_seen_at), MAX(last_anchor_at) + INTERVAL '1' DAY),
      COALESCE(MAX(last_anchor_at) + INTERVAL '1' DAY, MAX(last_seen_at))
    ) AS observed_until
  FROM (
    SELECT
      GREATEST(
        COALESCE(
          CASE
            WHEN NOT COALESCE(
              UNIX_MICROS(first_event_at) < UNIX_MICROS(send_time) - 60000000
              OR UNIX_MICROS(last_event_at) > UNIX_MICROS(send_time) + 2678400000000,
              FALSE
            )
            THEN last_event_at
          END,
          last_received_at,
          last_outbox_at
        ),
        COALESCE(
          last_received_at,
          CASE
            WHEN NOT COALESCE(
              UNIX_MICROS(first_event_at) < UNIX_MICROS(send_time) - 60000000
              OR UNIX_MICROS(last_event_at) > UNIX_MICROS(send_time) + 2678400000000,
              FALSE
            )
            THEN last_event_at
          END,
          last_outbox_at
        ),
        COALESCE(
          last_outbox_at,
          CASE
            WHEN NOT COALESCE(
              UNIX_MICROS(first_event_at) < UNIX_MICROS(send_time) - 60000000
              OR UNIX_MICROS(last_event_at) > UNIX_MICROS(send_time) + 2678400000000,
              FALSE
            )
            THEN last_event_at
          END,
          last_received_at
        )
      ) AS last_seen_at,
      GREATEST(
        COALESCE(last_received_at, last_outbox_at),
        COALESCE(last_outbox_at, last_received_at)
      ) AS last_anchor_at
    FROM rbm_facts
  ) AS rbm_times
), rbm_timed AS (
  SELECT
    f.*,
    s.observed_until AS observed_until,
    LEAST(COALESCE(api_revoked_at, ttl_revoked_at), COALESCE(ttl_revoked_at, api_revoked_at)) AS revoke_ok_at,
    LEAST(COALESCE(ttl_revoked_at, ttl_failed_at), COALESCE(ttl_failed_at, ttl_revoked_at)) AS ttl_event_at,
    COALESCE(
      (
        (
          UNIX_MICROS(expire_time) - UNIX_MICROS(send_time)
        ) / 1000000.0
      ),
      ttl_seconds
    ) AS expires_after,
    COALESCE(
      UNIX_MICROS(first_event_at) < UNIX_MICROS(send_time) - 60000000
      OR UNIX_MICROS(last_event_at) > UNIX_MICROS(send_time) + 2678400000000,
      FALSE
    ) AS implausible
  FROM rbm_facts AS f
  CROSS JOIN rbm_span AS s
  WHERE
    row_kind = 'message'
), rbm_ruled AS (
  SELECT
    *,
    CASE
      WHEN send_status = 404
      THEN 'not_rcs'
      WHEN NOT delivered_at IS NULL
      AND NOT revoke_ok_at IS NULL
      AND revoke_ok_at <= delivered_at
      THEN 'delivered_after_revoke'
      WHEN NOT delivered_at IS NULL
      THEN 'delivered'
      WHEN NOT revoke_ok_at IS NULL
      THEN 'revoked'
      WHEN NOT api_refused_at IS NULL OR NOT ttl_failed_at IS NULL
      THEN 'revoke_failed_undelivered'
      ELSE 'pending'
    END AS outcome,
    CASE
      WHEN api_revoke_attempts > 0
      AND (
        ttl_event_at IS NULL OR api_revoke_first_at <= ttl_event_at
      )
      THEN 'api'
      WHEN NOT ttl_event_at IS NULL
      THEN 'ttl'
      WHEN api_revoke_attempts > 0
      THEN 'api'
    END AS revoke_method,
    CASE
      WHEN NOT implausible
      THEN GREATEST(
        COALESCE(
          (
            (
              UNIX_MICROS(delivered_at) - UNIX_MICROS(send_time)
            ) / 1000000.0
          ),
          0.0
        ),
        COALESCE(
          0.0,
          (
            (
              UNIX_MICROS(delivered_at) - UNIX_MICROS(send_time)
            ) / 1000000.0
          )
        )
      )
    END AS latency,
    CASE
      WHEN NOT implausible
      THEN GREATEST(
        COALESCE(
          LEAST(
            COALESCE(
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              expires_after,
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after
            )
          ),
          0.0
        ),
        COALESCE(
          0.0,
          LEAST(
            COALESCE(
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after,
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              expires_after,
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              )
            ),
            COALESCE(
              (
                (
                  UNIX_MICROS(observed_until) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(revoke_ok_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(api_refused_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              (
                (
                  UNIX_MICROS(ttl_failed_at) - UNIX_MICROS(send_time)
                ) / 1000000.0
              ),
              expires_after
            )
          )
        )
      )
    END AS censored_after,
    LEAST(
      COALESCE(
        CASE WHEN NOT implausible THEN first_event_at END,
        first_received_at,
        first_outbox_at
      ),
      COALESCE(
        first_received_at,
        CASE WHEN NOT implausible THEN first_event_at END,
        first_outbox_at
      ),
      COALESCE(
        first_outbox_at,
        CASE WHEN NOT implausible THEN first_event_at END,
        first_received_at
      )
    ) AS first_seen_at,
    GREATEST(
      COALESCE(CASE WHEN NOT implausible THEN last_event_at END, last_received_at, last_outbox_at),
      COALESCE(last_received_at, CASE WHEN NOT implausible THEN last_event_at END, last_outbox_at),
      COALESCE(last_outbox_at, CASE WHEN NOT implausible THEN last_event_at END, last_received_at)
    ) AS last_seen_at,
    GREATEST(
      COALESCE(last_received_at, last_outbox_at),
      COALESCE(last_outbox_at, last_received_at)
    ) AS last_anchor_at
  FROM rbm_timed
)
SELECT
  message_id AS `messageId`,
  agent_id AS `agentId`,
  phone,
  use_case AS `useCase`,
  traffic_type AS `trafficType`,
  experiment,
  arm,
  policy_version AS `policyVersion`,
  CAST(send_time AS DATE) AS day,
  send_time AS `sendTime`,
  send_status AS `sendStatus`,
  send_attempts AS `sendAttempts`,
  ttl_seconds AS `ttlSeconds`,
  expire_time AS `expireTime`,
  expires_after AS `expiresAfterSeconds`,
  delivered_at AS `deliveredAt`,
  read_at AS `readAt`,
  api_revoke_attempts AS `revokeAttempts`,
  api_revoke_first_at AS `revokeRequestedAt`,
  api_revoked_at AS `revokedAt`,
  api_refused_at AS `revokeRefusedAt`,
  api_revoke_errors AS `revokeErrors`,
  ttl_revoked_at AS `ttlRevokedAt`,
  ttl_failed_at AS `ttlRevokeFailedAt`,
  fallbacks,
  fallback_at AS `fallbackAt`,
  fallback_channel AS `fallbackChannel`,
  fallback_reason AS `fallbackReason`,
  outcome AS `outcome`,
  revoke_method AS `revokeMethod`,
  outcome = 'revoked' AS `revokeSucceeded`,
  outcome IN ('delivered', 'delivered_after_revoke') AS `delivered`,
  CASE WHEN outcome IN ('delivered', 'delivered_after_revoke') THEN latency END AS `latencySeconds`,
  CASE
    WHEN outcome = 'not_rcs'
    THEN NULL
    WHEN outcome IN ('delivered', 'delivered_after_revoke')
    THEN latency
    ELSE censored_after
  END AS `observedSeconds`,
  COALESCE(
    outcome IN ('delivered', 'delivered_after_revoke') AND latency > expires_after,
    FALSE
  ) AS `staleDelivery`,
  COALESCE(
    outcome IN ('delivered', 'delivered_after_revoke') AND delivered_at > fallback_at,
    FALSE
  ) AS `doubleDelivery`,
  CASE
    WHEN outcome IN ('delivered', 'delivered_after_revoke')
    AND NOT read_at IS NULL
    AND NOT implausible
    THEN GREATEST(
      COALESCE((
        (
          UNIX_MICROS(read_at) - UNIX_MICROS(delivered_at)
        ) / 1000000.0
      ), 0.0),
      COALESCE(0.0, (
        (
          UNIX_MICROS(read_at) - UNIX_MICROS(delivered_at)
        ) / 1000000.0
      ))
    )
  END AS `readSeconds`,
  COALESCE(events, 0) AS `events`,
  CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS INT64) AS `duplicateEvents`,
  COALESCE(first_event_at < send_time AND NOT implausible, FALSE) AS `clockSkew`,
  COALESCE(first_event_rx > first_received_at, FALSE) AS `outOfOrder`,
  implausible AS `implausibleTime`
FROM rbm_ruled;
