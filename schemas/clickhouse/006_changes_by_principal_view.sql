-- Parameterized view: changes since a moment, grouped by who made them (CloudTrail principal ARN, also for a change
-- a snapshot saw before its event; a change no CloudTrail event named has none).
--   SELECT * FROM apigw.aws_apigatewayv2_api_integrations_changes_by_principal(since = '2026-11-24 00:00:00')
-- Replaced on every start, so that a database made before the attributions table reads them too.
CREATE OR REPLACE VIEW {db}.aws_apigatewayv2_api_integrations_changes_by_principal {on_cluster} AS
SELECT
    principal_arn,
    count() AS changes,
    countIf(operation = 'CREATE') AS creates,
    countIf(operation = 'UPDATE') AS updates,
    countIf(operation = 'DELETE') AS deletes,
    max(event_time) AS last_change_time,
    argMax(tuple(arn, operation, ifNull(cloudtrail_event_name, '')), (event_time, version)) AS last_change
FROM {db}.aws_apigatewayv2_api_integrations_history_attributed
WHERE event_time >= {since:DateTime64(3)}
GROUP BY principal_arn
ORDER BY changes DESC, principal_arn;
