import { Command } from 'commander';
import { loadConfig, requireRegions } from '../services/shared/config.js';
import { createLogger } from '../services/shared/logger.js';
import { emit, formatOption, type Format } from './output.js';

export function accountsCommand(): Command {
  return new Command('accounts')
    .description('Check what the snapshotter and the listener would read: assume each account\'s role, then make one GetApis and one '
      + 'LookupEvents call in every configured region of it; a row per account and region, and per account of the organization left out '
      + '(exit code 1 if one cannot be read)')
    .addOption(formatOption())
    .action(async (opts: { format: Format }) => {
      const config = loadConfig();
      requireRegions(config);
      // Loaded on use: every other command's start-up would pay for the AWS SDK.
      const [{ openAccountDirectory }, { checkAccess }, { createMetrics }] = await Promise.all([
        import('./sources.js'), import('./access-check.js'), import('../services/shared/metrics.js'),
      ]);
      const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
      const directory = await openAccountDirectory(config, { logger, metrics: createMetrics() });
      try {
        const rows = await checkAccess(config, directory);
        // A problem is read whole: it names the permission or the role that is missing.
        emit(opts.format, rows, rows, ['account_id', 'region', 'state', 'problem'], 'no account to read', 400);
        if (rows.some((row) => row.state === 'failing' || row.state === 'unreadable')) process.exitCode = 1;
      } finally {
        directory.close();
      }
    });
}
