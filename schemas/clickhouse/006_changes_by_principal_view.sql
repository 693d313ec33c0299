-- Parameterized view: changes since a moment, grouped by who made them (CloudTrail principal ARN; changes first
-- seen by a snapshot have no principal).
--   SELECT * FROM apigw.aws_apigatewayv2_api_integrations_changes_by_principal(since = '2026-11-24 00:00:00')
CREATE VIEW IF NOT EXISTS {db}.aws_apigatewayv2_api_integrations_changes_by_principal {on_cluster} AS
SELECT
    principal_arn,
    count() AS changes,
    countIf(operation = 'CREATE') AS creates,
    countIf(operation = 'UPDATE') AS updates,
    countIf(operation = 'DELETE') AS deletes,
    max(event_time) AS last_change_time,
    argMax(tuple(arn, operation, ifNull(cloudtrail_event_name, '')), (event_time, version)) AS last_change
FROM {db}.aws_apigatewayv2_api_integrations_history
WHERE event_time >= {since:DateTime64(3)}
GROUP BY principal_arn
ORDER BY changes DESC, principal_arn;
