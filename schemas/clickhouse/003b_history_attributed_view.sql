-- History with every principal known: a version a snapshot saw first takes the principal, event id and name, source
-- IP and user agent that its CloudTrail event named later (aws_apigatewayv2_api_integrations_attributions). Its
-- source_type stays SNAPSHOT (what saw it first). Its event_time becomes when that event says the change was made,
-- as the end of the event's second (CloudTrail keeps whole seconds: a version read earlier in that second stays
-- before it), and never after the snapshot's read: a change made minutes before a snapshot read it is dated then.
-- Replaced on every start, so that a database made by an earlier release reads it so too.
CREATE OR REPLACE VIEW {db}.aws_apigatewayv2_api_integrations_history_attributed {on_cluster} AS
SELECT h.* REPLACE (
    if(a.arn = '', h.event_time, least(h.event_time, a.event_time + toIntervalMillisecond(999))) AS event_time,
    coalesce(h.cloudtrail_event_id, a.cloudtrail_event_id) AS cloudtrail_event_id,
    coalesce(h.cloudtrail_event_name, a.cloudtrail_event_name) AS cloudtrail_event_name,
    coalesce(h.principal_arn, a.principal_arn) AS principal_arn,
    coalesce(h.source_ip, a.source_ip) AS source_ip,
    coalesce(h.user_agent, a.user_agent) AS user_agent
)
FROM {db}.aws_apigatewayv2_api_integrations_history AS h
LEFT JOIN (SELECT * FROM {db}.aws_apigatewayv2_api_integrations_attributions FINAL) AS a
    ON a.account_id = h.account_id AND a.region = h.region AND a.arn = h.arn AND a.version = h.version;
