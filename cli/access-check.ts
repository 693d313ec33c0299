import { GetApisCommand } from '@aws-sdk/client-apigatewayv2';
import { LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import pLimit from 'p-limit';
import type { AccountDirectory, AwsAccount } from '../services/shared/account-directory.js';
import type { AwsScope } from '../services/shared/aws-scope.js';
import type { Config } from '../services/shared/config.js';
import { describeError } from '../services/shared/errors.js';
import { apiGatewayClient, cloudTrailClient, scopesToRead } from './sources.js';

/** Whether one account's region can be read, or why an account is not read at all (its region then `*`). */
// A type, not an interface: rows are printed as records.
export type AccessRow = {
  account_id: string;
  region: string;
  state: 'ok' | 'failing' | 'unreadable' | 'excluded';
  problem: string | null;
};

/**
 * Makes the first call the snapshotter and the listener make in one account's region, one item each: a refused
 * permission, a region not enabled or an unreachable endpoint shows here, before a run depends on it.
 */
async function checkScope(config: Config, scope: AwsScope, credentials: AwsAccount['credentials']): Promise<AccessRow> {
  const apigateway = apiGatewayClient(config, scope.region, credentials);
  const cloudtrail = cloudTrailClient(config, scope.region, credentials);
  try {
    const calls = await Promise.allSettled([
      apigateway.send(new GetApisCommand({ MaxResults: '1' })),
      cloudtrail.send(new LookupEventsCommand({ LookupAttributes: [{ AttributeKey: 'EventSource', AttributeValue: 'apigateway.amazonaws.com' }], MaxResults: 1 })),
    ]);
    const problems = (['GetApis', 'LookupEvents'] as const).flatMap((operation, i) => {
      const call = calls[i]!;
      return call.status === 'rejected' ? [`${operation}: ${describeError(call.reason)}`] : [];
    });
    return { account_id: scope.accountId, region: scope.region, state: problems.length > 0 ? 'failing' : 'ok', problem: problems.join('; ') || null };
  } finally {
    apigateway.destroy();
    cloudtrail.destroy();
  }
}

/** Every configured region of every account the directory reads, checked; then the accounts it leaves out. */
export async function checkAccess(config: Config, directory: AccountDirectory): Promise<AccessRow[]> {
  const limit = pLimit(config.snapshotRegionsAtOnce);
  const rows = await Promise.all((await scopesToRead(directory, config.regions))
    .map((scope) => limit(() => checkScope(config, scope, directory.credentialsOf(scope.accountId)))));
  for (const { accountId, state, error } of directory.leftOut()) rows.push({ account_id: accountId, region: '*', state, problem: error ?? null });
  return rows;
}
