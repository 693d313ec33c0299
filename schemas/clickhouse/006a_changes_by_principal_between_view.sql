-- Parameterized view: changes between two moments (both included), grouped by who made them (CloudTrail principal
-- ARN, also for a change a snapshot saw before its event; a change no CloudTrail event named has none), of one
-- account, region or API ('' for any):
--   SELECT * FROM apigw.aws_apigatewayv2_api_integrations_changes_by_principal_between(
--     since = '2026-11-24 00:00:00', until = '2026-11-25 00:00:00', account = '', region = 'eu-west-1', api = '')
-- Replaced on every start, so that a database made before the attributions table reads them too.
CREATE OR REPLACE VIEW {db}.aws_apigatewayv2_api_integrations_changes_by_principal_between {on_cluster} AS
SELECT
    principal_arn,
    count() AS changes,
    countIf(operation = 'CREATE') AS creates,
    countIf(operation = 'UPDATE') AS updates,
    countIf(operation = 'DELETE') AS deletes,
    max(event_time) AS last_change_time,
    argMax(tuple(arn, operation, ifNull(cloudtrail_event_name, '')), (event_time, version)) AS last_change
FROM {db}.aws_apigatewayv2_api_integrations_history_attributed
WHERE event_time >= {since:DateTime64(3)} AND event_time <= {until:DateTime64(3)}
    AND ({account:String} = '' OR account_id = {account:String})
    AND ({region:String} = '' OR region = {region:String})
    AND ({api:String} = '' OR aws_api_id = {api:String})
GROUP BY principal_arn
ORDER BY changes DESC, principal_arn;
