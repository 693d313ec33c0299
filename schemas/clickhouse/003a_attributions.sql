-- Who made a change that a snapshot saw first. CloudTrail makes events visible minutes late, so a snapshot often
-- reads a change before its event arrives: the history row of that version has no principal. When the event comes
-- and shows the same state, the sink records its principal here for that version, once per version (the history
-- row is never rewritten). aws_apigatewayv2_api_integrations_history_attributed shows history with these joined in.
CREATE TABLE IF NOT EXISTS {db}.aws_apigatewayv2_api_integrations_attributions {on_cluster}
(
    arn String COMMENT 'The integration\'s ARN.',
    account_id LowCardinality(String) COMMENT 'AWS account that owns the API.',
    region LowCardinality(String) COMMENT 'AWS region of the API.',
    version UInt64 COMMENT 'The version of aws_apigatewayv2_api_integrations_history this event made.',
    event_id String COMMENT 'Deterministic id of the event that named the principal.',
    event_time DateTime64(3, 'UTC') COMMENT 'When the change happened: the CloudTrail event time.',
    cloudtrail_event_id Nullable(String) COMMENT 'CloudTrail EventId.',
    cloudtrail_event_name Nullable(String) COMMENT 'CloudTrail EventName.',
    principal_arn Nullable(String) COMMENT 'Who made the change: the CloudTrail userIdentity ARN.',
    source_ip Nullable(String) COMMENT 'CloudTrail sourceIPAddress.',
    user_agent Nullable(String) COMMENT 'CloudTrail userAgent.',
    kafka_partition Int32 COMMENT 'Topic partition of the event.',
    kafka_offset Int64 COMMENT 'Offset of the event.'
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, region, arn, version)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'The principal of each version a snapshot saw before CloudTrail showed its event.';
