/** One region of one account: what the snapshotter reads and the listener polls, each with clients of its own. */
export interface AwsScope {
  accountId: string;
  region: string;
}

/** A map key: `<account>/<region>`. */
export const scopeKey = (scope: AwsScope) => `${scope.accountId}/${scope.region}`;

/** The labels of a metric counted per account and region. */
export const scopeLabels = (scope: AwsScope) => ({ account_id: scope.accountId, region: scope.region });
