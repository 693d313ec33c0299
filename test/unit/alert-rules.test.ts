import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { Histogram } from 'prom-client';
import { parse } from 'yaml';
import { createMetrics } from '../../services/shared/metrics.js';
import { PROJECT_ROOT } from '../../stack/layout.js';

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: { summary?: string; description?: string };
}

const rules = (parse(readFileSync(join(PROJECT_ROOT, 'examples/prometheus-alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] })
  .groups.flatMap((group) => group.rules);

// Every series apigw-stream exports, with its labels; Prometheus adds the target's own to each. A histogram exports
// its buckets (with `le`), sum and count, not its own name.
const exported = new Map(createMetrics().registry.getMetricsAsArray().flatMap((metric) => {
  const labels = [...(metric as unknown as { labelNames: string[] }).labelNames, 'job', 'instance'];
  if (!(metric instanceof Histogram)) return [[metric.name, new Set(labels)] as const];
  return [[`${metric.name}_bucket`, new Set([...labels, 'le'])] as const, [`${metric.name}_sum`, new Set(labels)] as const, [`${metric.name}_count`, new Set(labels)] as const];
}));

/** The metrics an expression selects and the label names it matches or groups by; syntax errors by position. */
function read(expr: string): { metrics: string[]; labels: string[]; errors: number[] } {
  const found = { metrics: [] as string[], labels: [] as string[], errors: [] as number[] };
  parser.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError) found.errors.push(node.from);
      else if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') found.metrics.push(expr.slice(node.from, node.to));
      else if (node.name === 'LabelName') found.labels.push(expr.slice(node.from, node.to));
    },
  });
  return found;
}

describe('the example alerting rules', () => {
  it('parse as PromQL, and select only metrics and labels apigw-stream exports', () => {
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      const { metrics, labels, errors } = read(rule.expr);
      assert.deepEqual(errors, [], `${rule.alert}: PromQL syntax errors at ${errors.join(', ')} in ${rule.expr}`);
      assert.ok(metrics.length > 0, `${rule.alert} selects a metric`);
      for (const metric of metrics) assert.ok(exported.has(metric), `${rule.alert}: no metric ${metric}`);
      for (const label of labels) {
        assert.ok(metrics.some((metric) => exported.get(metric)?.has(label)), `${rule.alert}: none of ${metrics.join(', ')} has a label ${label}`);
      }
    }
  });

  it('name each alert once, with a severity and what to do', () => {
    assert.equal(new Set(rules.map((rule) => rule.alert)).size, rules.length);
    for (const rule of rules) {
      assert.ok(['info', 'warning', 'critical'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: summary and description`);
    }
  });

  it('find a misspelt metric or label', () => {
    assert.ok(!exported.has(read('apigw_stream_sink_lags > 1').metrics[0]!));
    assert.deepEqual(read('apigw_stream_sink_lag{partion="1"}').labels, ['partion']);
    assert.notDeepEqual(read('rate(apigw_stream_sink_lag[5m] > 0').errors, []);
  });
});
