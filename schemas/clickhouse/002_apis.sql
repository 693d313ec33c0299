-- One row per API Gateway v2 API, so that aws_apigatewayv2_api_integrations.api_id resolves.
CREATE TABLE IF NOT EXISTS {db}.aws_apigatewayv2_apis {on_cluster}
(
    api_id UUID COMMENT 'Deterministic UUID (v5) of the API\'s ARN, stable across syncs.',
    account_id LowCardinality(String) COMMENT 'AWS account that owns the API.',
    region LowCardinality(String) COMMENT 'AWS region of the API.',
    aws_api_id String COMMENT 'The API\'s AWS ApiId.',
    arn String COMMENT 'arn:aws:apigateway:{region}::/apis/{apiId}',
    name Nullable(String) COMMENT 'Name of the API.',
    protocol_type Nullable(String) COMMENT 'HTTP or WEBSOCKET.',
    api_endpoint Nullable(String) COMMENT 'Default endpoint of the API.',
    version UInt64 COMMENT 'Row version: the observation time in milliseconds.',
    is_deleted UInt8 COMMENT '1 when a complete snapshot no longer saw the API.',
    observed_at DateTime64(3, 'UTC') COMMENT 'When apigw-stream last read the API.'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (api_id)
COMMENT 'API Gateway v2 APIs. Read with FINAL.';
