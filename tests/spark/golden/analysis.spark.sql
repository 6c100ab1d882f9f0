-- rbmtools analysis SQL (spark), grouped by useCase, arm.
-- Generated from rbmtools.analysis.sql (DuckDB dialect) by sqlglot; do not edit.
-- Results, in order: the load report, the group counts, the latency bins (deliveries
-- and censorings per log-spaced bin) and the read bins; rbmtools computes the
-- statistics (Wilson intervals, Kaplan-Meier, best TTL) from the last three.
-- Inputs: relations rbm_event_rows and rbm_outbox_rows with the contract columns (rbmtools logs sql --schema events|outbox).

CACHE TABLE rbm_facts AS
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
    CASE
      WHEN NOT message.data IS NULL
      THEN FROM_JSON(
        CAST(TRY_TO_BINARY(message.data, 'base64') AS STRING),
        '`senderPhoneNumber` STRING, `phoneNumber` STRING, `messageId` STRING, `eventId` STRING, `sendTime` STRING, `eventType` STRING'
      )
    END AS push_event
  FROM rbm_event_rows
), rbm_events AS (
  SELECT
    source_file,
    verified,
    COALESCE(receivedAt, message.publishTime) AS received_at,
    COALESCE(event.messageId, messageId, push_event.messageId) AS message_id,
    COALESCE(event.eventId, eventId, push_event.eventId) AS event_id,
    COALESCE(event.eventType, eventType, push_event.eventType) AS event_type,
    COALESCE(event.sendTime, sendTime, TRY_CAST(push_event.sendTime AS TIMESTAMP)) AS send_time,
    COALESCE(event.senderPhoneNumber, senderPhoneNumber, push_event.senderPhoneNumber) AS sender_phone,
    COALESCE(event.phoneNumber, phoneNumber, push_event.phoneNumber) AS server_phone,
    COALESCE(
      NOT push_event.sendTime IS NULL
      AND TRY_CAST(push_event.sendTime AS TIMESTAMP) IS NULL,
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
        THEN XXHASH64(event_id)
        ELSE XXHASH64(event_type, send_time)
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
      THEN STRUCT(send_time AS at, received_at AS rx)
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
    LEAST(send_time, received_at) AS seen_first,
    GREATEST(send_time, received_at) AS seen_last
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
      ELSE SIZE(ARRAY_DISTINCT(COLLECT_LIST(event_key) FILTER(WHERE
        NOT event_key IS NULL)))
    END AS events,
    COUNT(event_line) AS lines,
    COUNT(unverified_line) AS unverified,
    MIN(event_time) AS first_event_at,
    MIN(stamped_arrival).rx AS first_event_rx,
    MIN(received_at) AS first_received_at,
    COUNT(outbox_line) AS outbox_lines,
    COUNT(send_attempt) AS send_attempts,
    COALESCE(
      MIN_BY(send_200, CASE WHEN NOT send_200 IS NULL THEN outbox_send_time END),
      MIN_BY(send_404, CASE WHEN NOT send_404 IS NULL THEN outbox_send_time END),
      MIN_BY(send_other, CASE WHEN NOT send_other IS NULL THEN outbox_send_time END)
    ) AS chosen,
    COUNT(revoke_at) AS api_revoke_attempts,
    MIN(revoke_at) AS api_revoke_first_at,
    MIN(revoke_ok_at) AS api_revoked_at,
    MIN(revoke_refused_at) AS api_refused_at,
    COUNT(revoke_error) AS api_revoke_errors,
    COUNT(fallback_at) AS fallbacks,
    MIN(fallback_at) AS fallback_at,
    MIN_BY(fallback_channel, CASE WHEN NOT fallback_channel IS NULL THEN fallback_at END) AS fallback_channel,
    MIN_BY(fallback_reason, CASE WHEN NOT fallback_reason IS NULL THEN fallback_at END) AS fallback_reason,
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
  TRY_CAST(REPLACE(chosen.ttl, 's', '') AS DOUBLE) AS ttl_seconds,
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
  COALESCE(SUM(lines) FILTER(WHERE
    row_kind <> 'malformed_event_lines'), 0) - COALESCE(SUM(events), 0) AS duplicates,
  COALESCE(SUM(lines) FILTER(WHERE
    row_kind = 'malformed_event_lines'), 0) AS malformed,
  COALESCE(SUM(unverified), 0) AS unverified,
  COALESCE(SUM(events) FILTER(WHERE
    row_kind = 'other_events'), 0) AS other_events,
  COALESCE(SUM(events) FILTER(WHERE
    row_kind = 'unknown_message'), 0) AS unknown_message_events,
  COUNT(*) FILTER(WHERE
    row_kind = 'unknown_message') AS unknown_messages,
  COALESCE(SUM(outbox_lines) FILTER(WHERE
    row_kind <> 'malformed_outbox_lines'), 0) AS outbox_records,
  COALESCE(SUM(outbox_lines) FILTER(WHERE
    row_kind = 'malformed_outbox_lines'), 0) AS outbox_malformed,
  COUNT(*) FILTER(WHERE
    row_kind = 'message') AS messages,
  COUNT(*) FILTER(WHERE
    row_kind = 'failed_send') AS failed_sends,
  COUNT(*) FILTER(WHERE
    row_kind = 'outbox_without_send') AS outbox_without_send,
  MIN(first_seen_at) AS span_start,
  MAX(last_seen_at) AS span_end
FROM rbm_facts;

CACHE TABLE rbm_lifecycle AS
WITH rbm_span AS (
  SELECT
    MAX(last_seen_at) AS observed_until
  FROM rbm_facts
), rbm_timed AS (
  SELECT
    f.*,
    s.observed_until,
    LEAST(api_revoked_at, ttl_revoked_at) AS revoke_ok_at,
    LEAST(ttl_revoked_at, ttl_failed_at) AS ttl_event_at,
    COALESCE(
      (
        DATEDIFF(MICROSECOND, send_time, expire_time) / CAST(1000000.0 AS DOUBLE)
      ),
      ttl_seconds
    ) AS expires_after
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
      (
        DATEDIFF(MICROSECOND, send_time, delivered_at) / CAST(1000000.0 AS DOUBLE)
      ),
      CAST(0.0 AS DOUBLE)
    ) AS latency,
    GREATEST(
      LEAST(
        (
          DATEDIFF(MICROSECOND, send_time, revoke_ok_at) / CAST(1000000.0 AS DOUBLE)
        ),
        (
          DATEDIFF(MICROSECOND, send_time, api_refused_at) / CAST(1000000.0 AS DOUBLE)
        ),
        (
          DATEDIFF(MICROSECOND, send_time, ttl_failed_at) / CAST(1000000.0 AS DOUBLE)
        ),
        expires_after,
        (
          DATEDIFF(MICROSECOND, send_time, observed_until) / CAST(1000000.0 AS DOUBLE)
        )
      ),
      CAST(0.0 AS DOUBLE)
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
      (
        DATEDIFF(MICROSECOND, delivered_at, read_at) / CAST(1000000.0 AS DOUBLE)
      ),
      CAST(0.0 AS DOUBLE)
    )
  END AS `readSeconds`,
  COALESCE(events, 0) AS events,
  CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS BIGINT) AS `duplicateEvents`,
  COALESCE(first_event_at < send_time, FALSE) AS `clockSkew`,
  COALESCE(first_event_rx > first_received_at, FALSE) AS `outOfOrder`
FROM rbm_ruled;

SELECT
  `useCase`,
  `arm`,
  COUNT(*) AS messages,
  COUNT(*) FILTER(WHERE
    outcome = 'delivered') AS delivered,
  COUNT(*) FILTER(WHERE
    outcome = 'delivered_after_revoke') AS delivered_after_revoke,
  COUNT(*) FILTER(WHERE
    outcome = 'revoked') AS revoked,
  COUNT(*) FILTER(WHERE
    outcome = 'revoke_failed_undelivered') AS revoke_failed_undelivered,
  COUNT(*) FILTER(WHERE
    outcome = 'pending') AS pending,
  COUNT(*) FILTER(WHERE
    outcome = 'not_rcs') AS not_rcs,
  COUNT(*) FILTER(WHERE
    NOT `revokeMethod` IS NULL) AS revoke_tried,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api') AS api_tried,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'revoked') AS api_revoked,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl') AS ttl_tried,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'revoked') AS ttl_revoked,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'delivered') AS api_outcome_delivered,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'delivered_after_revoke') AS api_outcome_delivered_after_revoke,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'revoked') AS api_outcome_revoked,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'revoke_failed_undelivered') AS api_outcome_revoke_failed_undelivered,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'pending') AS api_outcome_pending,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'api' AND outcome = 'not_rcs') AS api_outcome_not_rcs,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'delivered') AS ttl_outcome_delivered,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'delivered_after_revoke') AS ttl_outcome_delivered_after_revoke,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'revoked') AS ttl_outcome_revoked,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'revoke_failed_undelivered') AS ttl_outcome_revoke_failed_undelivered,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'pending') AS ttl_outcome_pending,
  COUNT(*) FILTER(WHERE
    `revokeMethod` = 'ttl' AND outcome = 'not_rcs') AS ttl_outcome_not_rcs,
  COUNT(*) FILTER(WHERE
    NOT `readSeconds` IS NULL) AS read,
  COUNT(*) FILTER(WHERE
    `staleDelivery`) AS stale_deliveries,
  COUNT(*) FILTER(WHERE
    `doubleDelivery`) AS double_deliveries,
  COUNT(*) FILTER(WHERE
    fallbacks > 0) AS fallbacks,
  COUNT(*) FILTER(WHERE
    `clockSkew`) AS clock_skew,
  COUNT(*) FILTER(WHERE
    `outOfOrder`) AS out_of_order,
  CAST(COALESCE(SUM(`duplicateEvents`), 0) AS BIGINT) AS duplicate_events
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
    WHEN `observedSeconds` <= CAST(0.001 AS DOUBLE)
    THEN 0
    ELSE CAST(FLOOR(LOG(10, `observedSeconds` / CAST(0.001 AS DOUBLE)) * 500) AS INT) + 1
  END AS bin,
  COUNT(*) FILTER(WHERE
    delivered) AS delivered,
  COUNT(*) FILTER(WHERE
    NOT delivered) AS censored
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
    WHEN `readSeconds` <= CAST(0.001 AS DOUBLE)
    THEN 0
    ELSE CAST(FLOOR(LOG(10, `readSeconds` / CAST(0.001 AS DOUBLE)) * 500) AS INT) + 1
  END AS bin,
  COUNT(*) AS read
FROM rbm_lifecycle
WHERE
  NOT `readSeconds` IS NULL
GROUP BY
  `useCase`,
  `arm`,
  bin;
