-- The live integrations: exactly the current state, without deleted rows.
CREATE VIEW IF NOT EXISTS {db}.aws_apigatewayv2_api_integrations_live {on_cluster} AS
SELECT * FROM {db}.aws_apigatewayv2_api_integrations FINAL WHERE is_deleted = 0;
