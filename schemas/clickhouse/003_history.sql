-- Append-only history: one row per distinct version of an integration. The sink writes a row only when the
-- configuration changed (or the integration appeared or vanished), never for a re-read of the same state.
CREATE TABLE IF NOT EXISTS {db}.aws_apigatewayv2_api_integrations_history {on_cluster}
(
    arn String COMMENT 'The integration\'s ARN.',
    account_id LowCardinality(String) COMMENT 'AWS account that owns the API.',
    region LowCardinality(String) COMMENT 'AWS region of the API.',
    aws_api_id String COMMENT 'The API\'s AWS ApiId.',
    integration_id String COMMENT 'The integration\'s AWS IntegrationId.',
    api_id UUID COMMENT 'UUID of the API (FK to aws_apigatewayv2_apis).',
    version UInt64 COMMENT 'The version this change gave the integration in aws_apigatewayv2_api_integrations.',
    operation LowCardinality(String) COMMENT 'CREATE, UPDATE or DELETE, as the sink derived it from the previous state.',
    event_op LowCardinality(String) COMMENT 'The op of the event that caused it (SNAPSHOT, CREATE, UPDATE, DELETE, SNAPSHOT_COMPLETE).',
    event_id String COMMENT 'Deterministic id of the event that caused it.',
    event_time DateTime64(3, 'UTC') COMMENT 'When the change happened (CloudTrail event time, or the snapshot read time).',
    observed_at DateTime64(3, 'UTC') COMMENT 'When apigw-stream read the state from AWS.',
    source_type LowCardinality(String) COMMENT 'SNAPSHOT or CLOUDTRAIL.',
    snapshot_id Nullable(String) COMMENT 'Snapshot that observed the change, for snapshot sources.',
    cloudtrail_event_id Nullable(String) COMMENT 'CloudTrail EventId, for CloudTrail sources.',
    cloudtrail_event_name Nullable(String) COMMENT 'CloudTrail EventName, for CloudTrail sources.',
    principal_arn Nullable(String) COMMENT 'Who made the change: the CloudTrail userIdentity ARN.',
    source_ip Nullable(String) COMMENT 'CloudTrail sourceIPAddress.',
    user_agent Nullable(String) COMMENT 'CloudTrail userAgent.',
    after Nullable(String) COMMENT 'The full after-image: canonical JSON of the 21 columns of aws_apigatewayv2_api_integrations; NULL on DELETE.',
    changed_fields Array(String) COMMENT 'Columns whose value differs from the previous version (all non-null columns on CREATE, none on DELETE).',
    kafka_partition Int32 COMMENT 'Topic partition of the event.',
    kafka_offset Int64 COMMENT 'Offset of the event.'
)
ENGINE = MergeTree
ORDER BY (account_id, region, arn, version)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Every version of every integration, oldest first by version.';
