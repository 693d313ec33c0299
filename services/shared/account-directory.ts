import {
  OrganizationsClient, paginateListAccounts, paginateListAccountsForParent, paginateListOrganizationalUnitsForParent, type Account,
} from '@aws-sdk/client-organizations';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { doesIdentityRequireRefresh, isIdentityExpired, memoizeIdentityProvider } from '@smithy/core';
import pLimit from 'p-limit';
import type { Config } from './config.js';
import { DependencyError, describeError } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

type RoleCredentials = Awaited<ReturnType<ReturnType<typeof fromTemporaryCredentials>>>;
/** A role's credentials, shared by the clients of its account. */
type AssumedRole = NonNullable<ReturnType<typeof memoizeIdentityProvider<RoleCredentials>>>;

/** An account to read, and the credentials that read it (none: the process's own). */
export interface AwsAccount {
  accountId: string;
  credentials?: AssumedRole;
}

/** The accounts the snapshotter and the listener read: fixed, or the organization's as last listed. */
export interface AccountDirectory {
  /** The accounts to read now. The organization's are listed again once the last listing is older than its refresh period. */
  accounts(): Promise<AwsAccount[]>;
  /** The credentials that read an account `accounts()` returned (none: the process's own). */
  credentialsOf(accountId: string): AssumedRole | undefined;
  /** The organization's accounts its last listing left out, and why. */
  leftOut(): LeftOutAccount[];
  close(): void;
}

/** An active account of the organization that is not read: its role could not be assumed, or it is excluded. */
export interface LeftOutAccount {
  accountId: string;
  state: 'unreadable' | 'excluded';
  /** Why its role could not be assumed. */
  error?: string;
}

/** Roles assumed at once while an organization's accounts are checked. */
const ASSUMED_AT_ONCE = 8;

/**
 * The accounts configured: the credentials' own, each of AWS_ROLE_ARNS through its role, or every active account of
 * the organization through AWS_ORGANIZATION_ROLE. Resolved once here, before anything is written: a role of
 * AWS_ROLE_ARNS that cannot be assumed, or an organization whose accounts cannot be listed, stops the start.
 */
export async function openAccountDirectory(config: Config, { logger, metrics }: { logger: Logger; metrics: Metrics }): Promise<AccountDirectory> {
  const stsOptions = { region: config.regions[0], endpoint: config.awsEndpointUrl };
  /**
   * Assumes the role now (throwing what STS answered when it cannot be). Its credentials are shared by every client
   * of the account, and assumed again shortly before they expire: each client on its own would assume it again.
   */
  const assume = async (arn: string): Promise<AssumedRole> => {
    const role = fromTemporaryCredentials({ params: { RoleArn: arn, RoleSessionName: 'apigw-stream', ExternalId: config.awsRoleExternalId }, clientConfig: stsOptions });
    const credentials = memoizeIdentityProvider(role, isIdentityExpired, doesIdentityRequireRefresh)!;
    await credentials();
    return credentials;
  };

  if (config.awsOrganization) return openOrganization(config.awsOrganization, { stsOptions, assume, logger, metrics });
  if (config.awsRoles.length > 0) {
    return fixedDirectory(await Promise.all(config.awsRoles.map(async ({ arn, accountId }) => {
      try {
        return { accountId, credentials: await assume(arn) };
      } catch (error) {
        throw new DependencyError('AWS_ROLE_ARNS', `cannot assume ${arn} (${describeError(error)}): check the role's trust policy (and its external id, AWS_ROLE_EXTERNAL_ID) and the credentials`, error);
      }
    })));
  }
  return fixedDirectory([{ accountId: config.awsAccountId ?? await ownAccountId(stsOptions) }]);
}

function fixedDirectory(accounts: AwsAccount[]): AccountDirectory {
  const credentials = new Map(accounts.map((account) => [account.accountId, account.credentials]));
  return { accounts: async () => accounts, credentialsOf: (accountId) => credentials.get(accountId), leftOut: () => [], close: () => undefined };
}

async function ownAccountId(stsOptions: { region?: string; endpoint?: string }): Promise<string> {
  const sts = new STSClient(stsOptions);
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    return identity.Account!;
  } catch (error) {
    throw new DependencyError('AWS', `cannot read the account id from STS GetCallerIdentity (${describeError(error)}); set AWS_ACCOUNT_ID or fix the credentials`, error);
  } finally {
    sts.destroy();
  }
}

/**
 * The organization's active accounts as listed, but the excluded ones: those whose role was assumed, and why each
 * other one could not be.
 */
interface OrganizationListing {
  accounts: AwsAccount[];
  unreadable: { accountId: string; error: string }[];
  /** Active accounts not excluded. */
  active: number;
  /** The active accounts AWS_ORGANIZATION_EXCLUDE_ACCOUNTS names. */
  excluded: string[];
}

/**
 * Every active account of the organization (or of the units AWS_ORGANIZATION_UNITS names, and the units nested in
 * them) but the excluded ones, each read through the role of that name in it. An account whose role cannot be
 * assumed (not deployed there yet, say) is left out with a warning, and tried again at the next listing; one that
 * leaves the organization (or the units) is no longer read. A listing that fails keeps the accounts of the last one.
 */
async function openOrganization(
  organization: NonNullable<Config['awsOrganization']>,
  deps: { stsOptions: { region?: string; endpoint?: string }; assume: (arn: string) => Promise<AssumedRole>; logger: Logger; metrics: Metrics },
): Promise<AccountDirectory> {
  const log = deps.logger.child({ component: 'account-directory' });
  const client = new OrganizationsClient(deps.stsOptions);
  // Per account id: its credentials once its role was assumed. Kept across listings, so the clients made with them stay valid.
  const readable = new Map<string, AssumedRole>();

  async function list(): Promise<OrganizationListing> {
    const active: { id: string; partition: string }[] = [];
    const excluded: string[] = [];
    for (const account of organization.units.length > 0 ? await accountsUnder(client, organization.units) : await allAccounts(client)) {
      if ((account.State ?? account.Status) !== 'ACTIVE') continue;
      if (organization.excludedAccounts.includes(account.Id!)) excluded.push(account.Id!);
      else active.push({ id: account.Id!, partition: account.Arn?.split(':')[1] ?? 'aws' });
    }
    const unreadable: { accountId: string; error: string }[] = [];
    const limit = pLimit(ASSUMED_AT_ONCE);
    await Promise.all(active.filter(({ id }) => !readable.has(id)).map(({ id, partition }) => limit(async () => {
      try {
        readable.set(id, await deps.assume(`arn:${partition}:iam::${id}:role/${organization.roleName}`));
      } catch (error) {
        unreadable.push({ accountId: id, error: describeError(error) });
      }
    })));
    const activeIds = new Set(active.map(({ id }) => id));
    for (const id of readable.keys()) if (!activeIds.has(id)) readable.delete(id);
    deps.metrics.accounts.set({ state: 'read' }, readable.size);
    deps.metrics.accounts.set({ state: 'unreadable' }, unreadable.length);
    deps.metrics.accounts.set({ state: 'excluded' }, excluded.length);
    deps.metrics.organizationListed.set(Date.now() / 1000);
    const accounts = [...readable].map(([accountId, credentials]) => ({ accountId, credentials })).sort((a, b) => a.accountId.localeCompare(b.accountId));
    return { accounts, unreadable, active: active.length, excluded };
  }

  /** Said when some accounts are still read: when none is, the start stops instead. */
  const warnUnreadable = ({ unreadable, active }: OrganizationListing) => {
    if (unreadable.length === 0) return;
    log.warn({ role: organization.roleName, unreadable }, `cannot assume ${organization.roleName} in ${unreadable.length} of the organization's ${active} active accounts: those are not read until a later listing can`);
  };

  // The last listing that succeeded: its accounts are the ones read.
  let last: OrganizationListing;
  try {
    last = await list();
  } catch (error) {
    client.destroy();
    if ((error as Error).name === 'ParentNotFoundException') {
      throw new DependencyError('AWS_ORGANIZATION_UNITS', `${describeError(error)}: check the unit ids (ou-…, or the root's r-…) against the organization's`, error);
    }
    const permissions = organization.units.length > 0 ? 'organizations:ListAccountsForParent and ListOrganizationalUnitsForParent' : 'organizations:ListAccounts';
    throw new DependencyError('AWS_ORGANIZATION_ROLE', `cannot list the organization's accounts (${describeError(error)}): the credentials need ${permissions}, in the management account or a delegated administrator`, error);
  }
  if (last.accounts.length === 0) {
    client.destroy();
    const [example] = last.unreadable;
    throw new DependencyError('AWS_ORGANIZATION_ROLE', `cannot assume ${organization.roleName} in any of the organization's ${last.active} active accounts${example ? ` (${example.accountId}: ${example.error})` : ''}: check that the role exists there and trusts these credentials (with AWS_ROLE_EXTERNAL_ID, if it asks for one)`);
  }
  warnUnreadable(last);
  log.info({ accounts: last.accounts.map((a) => a.accountId), excluded: last.excluded }, 'reading the organization\'s accounts');
  // A typo excludes nothing: say so.
  const notActive = organization.excludedAccounts.filter((id) => !last.excluded.includes(id));
  if (notActive.length > 0) {
    const among = organization.units.length > 0 ? 'in AWS_ORGANIZATION_UNITS' : 'of the organization';
    log.warn({ notActive }, `AWS_ORGANIZATION_EXCLUDE_ACCOUNTS names ${notActive.join(', ')}, not an active account ${among}`);
  }
  let listedAt = Date.now();
  let listing: Promise<AwsAccount[]> | undefined;
  return {
    accounts() {
      if (Date.now() - listedAt < organization.refreshSeconds * 1000) return Promise.resolve(last.accounts);
      listing ??= list().then((relisted) => {
        warnUnreadable(relisted);
        const before = new Set(last.accounts.map((a) => a.accountId));
        const now = new Set(relisted.accounts.map((a) => a.accountId));
        const added = [...now].filter((id) => !before.has(id));
        const gone = [...before].filter((id) => !now.has(id));
        if (added.length > 0 || gone.length > 0) log.info({ added, gone }, 'the organization\'s accounts changed');
        last = relisted;
        return last.accounts;
      }, (error: unknown) => {
        log.warn({ err: describeError(error) }, 'listing the organization\'s accounts failed; reading the accounts of the last listing');
        return last.accounts;
      }).finally(() => {
        listedAt = Date.now();
        listing = undefined;
      });
      return listing;
    },
    credentialsOf: (accountId) => readable.get(accountId),
    leftOut: () => [
      ...last.unreadable.map(({ accountId, error }) => ({ accountId, state: 'unreadable' as const, error })),
      ...last.excluded.map((accountId) => ({ accountId, state: 'excluded' as const })),
    ],
    close: () => client.destroy(),
  };
}

async function allAccounts(client: OrganizationsClient): Promise<Account[]> {
  const accounts: Account[] = [];
  for await (const page of paginateListAccounts({ client }, {})) accounts.push(...page.Accounts ?? []);
  return accounts;
}

/** The accounts in each unit and in every unit nested below it, each once. */
async function accountsUnder(client: OrganizationsClient, units: string[]): Promise<Account[]> {
  const accounts: Account[] = [];
  const visited = new Set<string>();
  const pending = [...units];
  for (let unit = pending.shift(); unit !== undefined; unit = pending.shift()) {
    if (visited.has(unit)) continue;
    visited.add(unit);
    for await (const page of paginateListAccountsForParent({ client }, { ParentId: unit })) accounts.push(...page.Accounts ?? []);
    for await (const page of paginateListOrganizationalUnitsForParent({ client }, { ParentId: unit })) {
      pending.push(...(page.OrganizationalUnits ?? []).map((child) => child.Id!));
    }
  }
  return accounts;
}
