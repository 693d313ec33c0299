-- Parameterized view: changes since a moment, grouped by who made them, everywhere (see
-- aws_apigatewayv2_api_integrations_changes_by_principal_between for a range and filters):
--   SELECT * FROM apigw.aws_apigatewayv2_api_integrations_changes_by_principal(since = '2026-11-24 00:00:00')
-- Replaced on every start, with the view it reads.
CREATE OR REPLACE VIEW {db}.aws_apigatewayv2_api_integrations_changes_by_principal {on_cluster} AS
SELECT * FROM {db}.aws_apigatewayv2_api_integrations_changes_by_principal_between(
    since = {since:DateTime64(3)}, until = '2299-12-31 23:59:59.999', account = '', region = '', api = '');
