-- rbmtools analysis SQL (bigquery), grouped by useCase, arm.
-- Generated from rbmtools.analysis.sql (DuckDB dialect) by sqlglot; do not edit.
-- Results, in order: the load report, the group counts, the latency bins (deliveries
-- and censorings per log-spaced bin) and the read bins; rbmtools computes the
-- statistics (Wilson intervals, Kaplan-Meier, best TTL) from the last three.

CREATE TEMP FUNCTION rbm_decode_push(data STRING) AS ((
  SELECT AS STRUCT
    JSON_VALUE(doc, '$.senderPhoneNumber') AS senderPhoneNumber,
    JSON_VALUE(doc, '$.phoneNumber') AS phoneNumber,
    JSON_VALUE(doc, '$.messageId') AS messageId,
    JSON_VALUE(doc, '$.eventId') AS eventId,
    REGEXP_REPLACE(JSON_VALUE(doc, '$.sendTime'), r'(\.\d{6})\d+', r'\1') AS sendTime,
    JSON_VALUE(doc, '$.eventType') AS eventType
  FROM (SELECT SAFE.PARSE_JSON(SAFE_CONVERT_BYTES_TO_STRING(SAFE.FROM_BASE64(data))) AS doc)
));

CREATE TEMP TABLE rbm_event_rows AS
SELECT _FILE_NAME AS source_file, receivedAt, verified, event, senderPhoneNumber, phoneNumber, messageId, eventId, sendTime, eventType, message FROM `proj.rbm.events`;

CREATE TEMP TABLE rbm_outbox_rows AS
SELECT _FILE_NAME AS source_file, kind, messageId, phone, agentId, sendTime, useCase, trafficType, ttl, expireTime, status, experiment, arm, error, requestedAt, attempt, channel, sentAt, reason FROM `proj.rbm.outbox`;

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
    CASE WHEN NOT message.data IS NULL THEN rbm_decode_push(message.data) END AS push_event
  FROM rbm_event_rows
), rbm_events AS (
  SELECT
    source_file,
    verified,
    COALESCE(receivedAt, message.publishTime) AS received_at,
    COALESCE(event.messageId, messageId, push_event.messageId) AS message_id,
    COALESCE(event.eventId, eventId, push_event.eventId) AS event_id,
    COALESCE(event.eventType, eventType, push_event.eventType) AS event_type,
    COALESCE(event.sendTime, sendTime, SAFE_CAST(push_event.sendTime AS TIMESTAMP)) AS send_time,
    COALESCE(event.senderPhoneNumber, senderPhoneNumber, push_event.senderPhoneNumber) AS sender_phone,
    COALESCE(event.phoneNumber, phoneNumber, push_event.phoneNumber) AS server_phone,
    COALESCE(
      NOT push_event.sendTime IS NULL
      AND SAFE_CAST(push_event.sendTime AS TIMESTAMP) IS NULL,
      FALSE
    ) AS bad_time
  FROM rbm_event_shapes
), rbm_classified AS (
  SELECT
    *,
    CASE
      WHEN bad_time
      THEN 'malformed'
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
    END AS cls
  FROM rbm_events
), rbm_event_fact_rows AS (
  SELECT
    CASE cls WHEN 'message' THEN 0 WHEN 'other' THEN 1 ELSE 2 END AS line_class,
    CASE WHEN cls <> 'malformed' THEN message_id END AS group_id,
    CASE WHEN cls = 'malformed' THEN source_file END AS bad_file,
    TRUE AS event_line,
    CASE
      WHEN cls <> 'malformed'
      THEN CASE
        WHEN NOT event_id IS NULL
        THEN FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_id)))
        ELSE FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(event_type, send_time)))
      END
    END AS event_key,
    CASE WHEN verified = FALSE THEN TRUE END AS unverified_line,
    CASE WHEN event_type = 'DELIVERED' THEN send_time END AS delivered_time,
    CASE WHEN event_type = 'READ' THEN send_time END AS read_time,
    CASE WHEN event_type = 'TTL_EXPIRATION_REVOKED' THEN send_time END AS ttl_revoked_time,
    CASE WHEN event_type = 'TTL_EXPIRATION_REVOKE_FAILED' THEN send_time END AS ttl_failed_time,
    send_time AS event_time,
    received_at,
    CASE
      WHEN NOT send_time IS NULL AND NOT received_at IS NULL
      THEN STRUCT(send_time AS `at`, received_at AS rx)
    END AS stamped_arrival,
    NULL AS outbox_line,
    NULL AS outbox_send_time,
    NULL AS send_attempt,
    NULL AS send_200,
    NULL AS send_404,
    NULL AS send_other,
    NULL AS revoke_at,
    NULL AS revoke_ok_at,
    NULL AS revoke_refused_at,
    NULL AS revoke_error,
    NULL AS fallback_at,
    NULL AS fallback_channel,
    NULL AS fallback_reason,
    LEAST(COALESCE(send_time, received_at), COALESCE(received_at, send_time)) AS seen_first,
    GREATEST(COALESCE(send_time, received_at), COALESCE(received_at, send_time)) AS seen_last
  FROM rbm_classified
), rbm_outbox AS (
  SELECT
    *,
    CASE
      WHEN kind = 'send'
      THEN NOT messageId IS NULL AND NOT sendTime IS NULL AND NOT status IS NULL
      WHEN kind = 'revoke'
      THEN NOT messageId IS NULL AND NOT requestedAt IS NULL AND NOT status IS NULL
      WHEN kind = 'fallback'
      THEN NOT messageId IS NULL AND NOT sentAt IS NULL
      ELSE FALSE
    END AS ok
  FROM rbm_outbox_rows
), rbm_outbox_fact_rows AS (
  SELECT
    CASE WHEN ok THEN 0 ELSE 3 END AS line_class,
    CASE WHEN ok THEN messageId END AS group_id,
    CASE WHEN ok THEN NULL ELSE source_file END AS bad_file,
    NULL AS event_line,
    NULL AS event_key,
    NULL AS unverified_line,
    NULL AS delivered_time,
    NULL AS read_time,
    NULL AS ttl_revoked_time,
    NULL AS ttl_failed_time,
    NULL AS event_time,
    NULL AS received_at,
    NULL AS stamped_arrival,
    TRUE AS outbox_line,
    sendTime AS outbox_send_time,
    CASE WHEN kind = 'send' THEN TRUE END AS send_attempt,
    CASE
      WHEN kind = 'send' AND status = 200
      THEN STRUCT(
        sendTime AS send_time,
        status AS send_status,
        expireTime AS expire_time,
        ttl AS ttl,
        useCase AS use_case,
        trafficType AS traffic_type,
        experiment AS experiment,
        arm AS arm,
        agentId AS agent_id,
        phone AS phone
      )
    END AS send_200,
    CASE
      WHEN kind = 'send' AND status = 404
      THEN STRUCT(
        sendTime AS send_time,
        status AS send_status,
        expireTime AS expire_time,
        ttl AS ttl,
        useCase AS use_case,
        trafficType AS traffic_type,
        experiment AS experiment,
        arm AS arm,
        agentId AS agent_id,
        phone AS phone
      )
    END AS send_404,
    CASE
      WHEN kind = 'send' AND NOT status IN (200, 404)
      THEN STRUCT(
        sendTime AS send_time,
        status AS send_status,
        expireTime AS expire_time,
        ttl AS ttl,
        useCase AS use_case,
        trafficType AS traffic_type,
        experiment AS experiment,
        arm AS arm,
        agentId AS agent_id,
        phone AS phone
      )
    END AS send_other,
    CASE WHEN kind = 'revoke' THEN requestedAt END AS revoke_at,
    CASE WHEN kind = 'revoke' AND status = 200 THEN requestedAt END AS revoke_ok_at,
    CASE WHEN kind = 'revoke' AND status = 404 THEN requestedAt END AS revoke_refused_at,
    CASE WHEN kind = 'revoke' AND NOT status IN (200, 404) THEN TRUE END AS revoke_error,
    CASE WHEN kind = 'fallback' THEN sentAt END AS fallback_at,
    CASE WHEN kind = 'fallback' THEN channel END AS fallback_channel,
    CASE WHEN kind = 'fallback' THEN reason END AS fallback_reason,
    COALESCE(sendTime, requestedAt, sentAt) AS seen_first,
    COALESCE(sendTime, requestedAt, sentAt) AS seen_last
  FROM rbm_outbox
), rbm_grouped AS (
  SELECT
    line_class,
    group_id,
    bad_file,
    MIN(delivered_time) AS delivered_at,
    MIN(read_time) AS read_at,
    MIN(ttl_revoked_time) AS ttl_revoked_at,
    MIN(ttl_failed_time) AS ttl_failed_at,
    CASE
      WHEN line_class = 2 OR COUNT(event_key) = 0
      THEN 0
      WHEN MIN(event_key) = MAX(event_key)
      THEN 1
      WHEN COUNT(event_key) = 2
      THEN 2
      ELSE ARRAY_LENGTH(
        ARRAY_DISTINCT(ARRAY_AGG(IF(NOT event_key IS NULL, event_key, NULL) IGNORE NULLS))
      )
    END AS events,
    COUNT(event_line) AS lines,
    COUNT(unverified_line) AS unverified,
    MIN(event_time) AS first_event_at,
    MIN(stamped_arrival).rx AS first_event_rx,
    MIN(received_at) AS first_received_at,
    COUNT(outbox_line) AS outbox_lines,
    COUNT(send_attempt) AS send_attempts,
    COALESCE(
      ARRAY_AGG(
        IF((
          NOT send_200 IS NULL
        ) AND (
          NOT outbox_send_time IS NULL
        ), send_200, NULL) IGNORE NULLS ORDER BY IF((
          NOT send_200 IS NULL
        ) AND (
          NOT outbox_send_time IS NULL
        ), 0, 1), outbox_send_time IS NULL, outbox_send_time ASC
        LIMIT 1
      )[SAFE_OFFSET(0)],
      ARRAY_AGG(
        IF((
          NOT send_404 IS NULL
        ) AND (
          NOT outbox_send_time IS NULL
        ), send_404, NULL) IGNORE NULLS ORDER BY IF((
          NOT send_404 IS NULL
        ) AND (
          NOT outbox_send_time IS NULL
        ), 0, 1), outbox_send_time IS NULL, outbox_send_time ASC
        LIMIT 1
      )[SAFE_OFFSET(0)],
      ARRAY_AGG(
        IF(
          (
            NOT send_other IS NULL
          ) AND (
            NOT outbox_send_time IS NULL
          ),
          send_other,
          NULL
        ) IGNORE NULLS ORDER BY IF((
          NOT send_other IS NULL
        ) AND (
          NOT outbox_send_time IS NULL
        ), 0, 1), outbox_send_time IS NULL, outbox_send_time ASC
        LIMIT 1
      )[SAFE_OFFSET(0)]
    ) AS chosen,
    COUNT(revoke_at) AS api_revoke_attempts,
    MIN(revoke_at) AS api_revoke_first_at,
    MIN(revoke_ok_at) AS api_revoked_at,
    MIN(revoke_refused_at) AS api_refused_at,
    COUNT(revoke_error) AS api_revoke_errors,
    COUNT(fallback_at) AS fallbacks,
    MIN(fallback_at) AS fallback_at,
    ARRAY_AGG(
      IF(
        (
          NOT fallback_channel IS NULL
        ) AND (
          NOT fallback_at IS NULL
        ),
        fallback_channel,
        NULL
      ) IGNORE NULLS ORDER BY IF((
        NOT fallback_channel IS NULL
      ) AND (
        NOT fallback_at IS NULL
      ), 0, 1), fallback_at IS NULL, fallback_at ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_channel,
    ARRAY_AGG(
      IF(
        (
          NOT fallback_reason IS NULL
        ) AND (
          NOT fallback_at IS NULL
        ),
        fallback_reason,
        NULL
      ) IGNORE NULLS ORDER BY IF((
        NOT fallback_reason IS NULL
      ) AND (
        NOT fallback_at IS NULL
      ), 0, 1), fallback_at IS NULL, fallback_at ASC
      LIMIT 1
    )[SAFE_OFFSET(0)] AS fallback_reason,
    MIN(seen_first) AS first_seen_at,
    MAX(seen_last) AS last_seen_at
  FROM (
    SELECT
      *
    FROM rbm_event_fact_rows
    UNION ALL
    SELECT
      *
    FROM rbm_outbox_fact_rows
  ) AS rbm_fact_rows
  GROUP BY
    line_class,
    group_id,
    bad_file
)
SELECT
  CASE line_class
    WHEN 0
    THEN CASE
      WHEN send_attempts > 0 AND chosen.send_status IN (200, 404)
      THEN 'message'
      WHEN send_attempts > 0
      THEN 'failed_send'
      WHEN outbox_lines > 0
      THEN 'outbox_without_send'
      ELSE 'unknown_message'
    END
    WHEN 1
    THEN 'other_events'
    WHEN 2
    THEN 'malformed_event_lines'
    ELSE 'malformed_outbox_lines'
  END AS row_kind,
  CASE WHEN line_class = 0 THEN group_id END AS message_id,
  bad_file,
  delivered_at,
  read_at,
  ttl_revoked_at,
  ttl_failed_at,
  events,
  lines,
  unverified,
  first_event_at,
  first_event_rx,
  first_received_at,
  send_attempts,
  chosen.send_status AS send_status,
  chosen.send_time AS send_time,
  chosen.expire_time AS expire_time,
  SAFE_CAST(REPLACE(chosen.ttl, 's', '') AS FLOAT64) AS ttl_seconds,
  chosen.use_case AS use_case,
  chosen.traffic_type AS traffic_type,
  chosen.experiment AS experiment,
  chosen.arm AS arm,
  chosen.agent_id AS agent_id,
  chosen.phone AS phone,
  api_revoke_attempts,
  api_revoke_first_at,
  api_revoked_at,
  api_refused_at,
  api_revoke_errors,
  fallbacks,
  fallback_at,
  fallback_channel,
  fallback_reason,
  outbox_lines,
  first_seen_at,
  last_seen_at
FROM rbm_grouped;

SELECT
  COALESCE(SUM(lines), 0) AS lines,
  COALESCE(SUM(events), 0) AS events,
  COALESCE(SUM(IF(row_kind <> 'malformed_event_lines', lines, NULL)), 0) - COALESCE(SUM(events), 0) AS duplicates,
  COALESCE(SUM(IF(row_kind = 'malformed_event_lines', lines, NULL)), 0) AS malformed,
  COALESCE(SUM(unverified), 0) AS unverified,
  COALESCE(SUM(IF(row_kind = 'other_events', events, NULL)), 0) AS other_events,
  COALESCE(SUM(IF(row_kind = 'unknown_message', events, NULL)), 0) AS unknown_message_events,
  COUNTIF(row_kind = 'unknown_message') AS unknown_messages,
  COALESCE(SUM(IF(row_kind <> 'malformed_outbox_lines', outbox_lines, NULL)), 0) AS outbox_records,
  COALESCE(SUM(IF(row_kind = 'malformed_outbox_lines', outbox_lines, NULL)), 0) AS outbox_malformed,
  COUNTIF(row_kind = 'message') AS messages,
  COUNTIF(row_kind = 'failed_send') AS failed_sends,
  COUNTIF(row_kind = 'outbox_without_send') AS outbox_without_send,
  MIN(first_seen_at) AS span_start,
  MAX(last_seen_at) AS span_end
FROM rbm_facts;

CREATE TEMP TABLE rbm_lifecycle AS
WITH rbm_span AS (
  SELECT
    MAX(last_seen_at) AS observed_until
  FROM rbm_facts
), rbm_timed AS (
  SELECT
    f.*,
    s.observed_until,
    LEAST(COALESCE(api_revoked_at, ttl_revoked_at), COALESCE(ttl_revoked_at, api_revoked_at)) AS revoke_ok_at,
    LEAST(COALESCE(ttl_revoked_at, ttl_failed_at), COALESCE(ttl_failed_at, ttl_revoked_at)) AS ttl_event_at,
    COALESCE((
      TIMESTAMP_DIFF(expire_time, send_time, MICROSECOND) / 1000000.0
    ), ttl_seconds) AS expires_after
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
    GREATEST(
      COALESCE((
        TIMESTAMP_DIFF(delivered_at, send_time, MICROSECOND) / 1000000.0
      ), 0.0),
      COALESCE(0.0, (
        TIMESTAMP_DIFF(delivered_at, send_time, MICROSECOND) / 1000000.0
      ))
    ) AS latency,
    GREATEST(
      COALESCE(
        LEAST(
          COALESCE(
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            expires_after,
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
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
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after,
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            expires_after,
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            )
          ),
          COALESCE(
            (
              TIMESTAMP_DIFF(observed_until, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(revoke_ok_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(api_refused_at, send_time, MICROSECOND) / 1000000.0
            ),
            (
              TIMESTAMP_DIFF(ttl_failed_at, send_time, MICROSECOND) / 1000000.0
            ),
            expires_after
          )
        )
      )
    ) AS censored_after
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
  outcome,
  revoke_method AS `revokeMethod`,
  outcome = 'revoked' AS `revokeSucceeded`,
  outcome IN ('delivered', 'delivered_after_revoke') AS delivered,
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
    WHEN outcome IN ('delivered', 'delivered_after_revoke') AND NOT read_at IS NULL
    THEN GREATEST(
      COALESCE((
        TIMESTAMP_DIFF(read_at, delivered_at, MICROSECOND) / 1000000.0
      ), 0.0),
      COALESCE(0.0, (
        TIMESTAMP_DIFF(read_at, delivered_at, MICROSECOND) / 1000000.0
      ))
    )
  END AS `readSeconds`,
  COALESCE(events, 0) AS events,
  CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS INT64) AS `duplicateEvents`,
  COALESCE(first_event_at < send_time, FALSE) AS `clockSkew`,
  COALESCE(first_event_rx > first_received_at, FALSE) AS `outOfOrder`
FROM rbm_ruled;

SELECT
  `useCase`,
  `arm`,
  COUNT(*) AS messages,
  COUNTIF(outcome = 'delivered') AS delivered,
  COUNTIF(outcome = 'delivered_after_revoke') AS delivered_after_revoke,
  COUNTIF(outcome = 'revoked') AS revoked,
  COUNTIF(outcome = 'revoke_failed_undelivered') AS revoke_failed_undelivered,
  COUNTIF(outcome = 'pending') AS pending,
  COUNTIF(outcome = 'not_rcs') AS not_rcs,
  COUNTIF(NOT `revokeMethod` IS NULL) AS revoke_tried,
  COUNTIF(`revokeMethod` = 'api') AS api_tried,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'revoked') AS api_revoked,
  COUNTIF(`revokeMethod` = 'ttl') AS ttl_tried,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'revoked') AS ttl_revoked,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'delivered') AS api_outcome_delivered,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'delivered_after_revoke') AS api_outcome_delivered_after_revoke,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'revoked') AS api_outcome_revoked,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'revoke_failed_undelivered') AS api_outcome_revoke_failed_undelivered,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'pending') AS api_outcome_pending,
  COUNTIF(`revokeMethod` = 'api' AND outcome = 'not_rcs') AS api_outcome_not_rcs,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'delivered') AS ttl_outcome_delivered,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'delivered_after_revoke') AS ttl_outcome_delivered_after_revoke,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'revoked') AS ttl_outcome_revoked,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'revoke_failed_undelivered') AS ttl_outcome_revoke_failed_undelivered,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'pending') AS ttl_outcome_pending,
  COUNTIF(`revokeMethod` = 'ttl' AND outcome = 'not_rcs') AS ttl_outcome_not_rcs,
  COUNTIF(NOT `readSeconds` IS NULL) AS read,
  COUNTIF(`staleDelivery`) AS stale_deliveries,
  COUNTIF(`doubleDelivery`) AS double_deliveries,
  COUNTIF(fallbacks > 0) AS fallbacks,
  COUNTIF(`clockSkew`) AS clock_skew,
  COUNTIF(`outOfOrder`) AS out_of_order,
  CAST(COALESCE(SUM(`duplicateEvents`), 0) AS INT64) AS duplicate_events
FROM rbm_lifecycle
GROUP BY
  `useCase`,
  `arm`
ORDER BY
  `useCase` NULLS LAST,
  `arm` NULLS LAST;

SELECT
  `useCase`,
  `arm`,
  CASE
    WHEN `observedSeconds` <= 0.001
    THEN 0
    ELSE CAST(FLOOR(LOG(`observedSeconds` / 0.001, 10) * 500) AS INT64) + 1
  END AS bin,
  COUNTIF(delivered) AS delivered,
  COUNTIF(NOT delivered) AS censored
FROM rbm_lifecycle
WHERE
  NOT `observedSeconds` IS NULL
GROUP BY
  `useCase`,
  `arm`,
  bin;

SELECT
  `useCase`,
  `arm`,
  CASE
    WHEN `readSeconds` <= 0.001
    THEN 0
    ELSE CAST(FLOOR(LOG(`readSeconds` / 0.001, 10) * 500) AS INT64) + 1
  END AS bin,
  COUNT(*) AS read
FROM rbm_lifecycle
WHERE
  NOT `readSeconds` IS NULL
GROUP BY
  `useCase`,
  `arm`,
  bin;
