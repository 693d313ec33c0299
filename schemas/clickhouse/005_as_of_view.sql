-- Parameterized view: every integration as it was at a moment, from history (a DELETE as its last version means
-- it did not exist then). The 21 columns come back out of the after-image; map columns stay canonical JSON.
--   SELECT * FROM apigw.aws_apigatewayv2_api_integrations_as_of(at = '2026-11-25 10:00:00')
-- Replaced on every start, so that a database made before the attributions table reads them too.
CREATE OR REPLACE VIEW {db}.aws_apigatewayv2_api_integrations_as_of {on_cluster} AS
SELECT
    arn, account_id, region, aws_api_id, version, event_time, source_type, principal_arn, cloudtrail_event_name,
    toUUID(JSONExtractString(after, 'api_id')) AS api_id,
    JSONExtractBool(after, 'api_gateway_managed') AS api_gateway_managed,
    JSONExtract(after, 'connection_id', 'Nullable(String)') AS connection_id,
    JSONExtract(after, 'connection_type', 'Nullable(String)') AS connection_type,
    JSONExtract(after, 'content_handling_strategy', 'Nullable(String)') AS content_handling_strategy,
    JSONExtract(after, 'credentials_arn', 'Nullable(String)') AS credentials_arn,
    JSONExtract(after, 'description', 'Nullable(String)') AS description,
    JSONExtract(after, 'integration_id', 'Nullable(String)') AS integration_id,
    JSONExtract(after, 'integration_method', 'Nullable(String)') AS integration_method,
    JSONExtract(after, 'integration_response_selection_expression', 'Nullable(String)') AS integration_response_selection_expression,
    JSONExtract(after, 'integration_subtype', 'Nullable(String)') AS integration_subtype,
    JSONExtract(after, 'integration_type', 'Nullable(String)') AS integration_type,
    JSONExtract(after, 'integration_uri', 'Nullable(String)') AS integration_uri,
    JSONExtract(after, 'passthrough_behavior', 'Nullable(String)') AS passthrough_behavior,
    JSONExtract(after, 'payload_format_version', 'Nullable(String)') AS payload_format_version,
    nullIf(JSONExtractRaw(after, 'request_parameters'), 'null') AS request_parameters,
    nullIf(JSONExtractRaw(after, 'request_templates'), 'null') AS request_templates,
    nullIf(JSONExtractRaw(after, 'response_parameters'), 'null') AS response_parameters,
    JSONExtract(after, 'template_selection_expression', 'Nullable(String)') AS template_selection_expression,
    JSONExtract(after, 'timeout_in_millis', 'Nullable(Int32)') AS timeout_in_millis,
    JSONExtract(after, 'tls_config_server_name_to_verify', 'Nullable(String)') AS tls_config_server_name_to_verify,
    after
FROM
(
    SELECT *
    FROM {db}.aws_apigatewayv2_api_integrations_history_attributed
    WHERE event_time <= {at:DateTime64(3)}
    ORDER BY arn, event_time DESC, version DESC
    LIMIT 1 BY arn
)
WHERE operation != 'DELETE';
