/**
 * The connection flags every admin command shares, added in one place, each with its
 * environment variable (commander's Option.env: a flag beats its variable). Between the two
 * targets a flag also beats a variable: `--data-dir` beats POBOX_URL, and a URL (flag or
 * POBOX_URL) beats POBOX_DATA_DIR and the default data dir. An empty variable counts as unset.
 */
import { Option, type Command } from 'commander';

export function addTargetOptions(cmd: Command, need: 'admin' | 'send' = 'admin'): Command {
  cmd.addOption(new Option('--url <url>', 'a running server').env('POBOX_URL'));
  cmd.addOption(new Option('--data-dir <dir>', "a stopped server's data dir, opened directly").env('POBOX_DATA_DIR').default('./.pobox-data'));
  if (need === 'send') cmd.addOption(new Option('--api-key <key>', 'API key with the send scope, for --url').env('POBOX_API_KEY'));
  cmd.addOption(new Option('--admin-key <key>', 'API key with the admin scope, for --url').env('POBOX_ADMIN_KEY'));
  cmd.hook('preAction', (c) => pickTarget(c));
  return cmd.option('--json', 'print JSON for scripts instead of a table');
}

function pickTarget(c: Command): void {
  for (const key of ['url', 'dataDir', 'apiKey', 'adminKey']) {
    if (c.getOptionValueSource(key) === 'env' && c.getOptionValue(key) === '') c.setOptionValueWithSource(key, key === 'dataDir' ? './.pobox-data' : undefined, 'default');
  }
  if (c.getOptionValue('url') === undefined) return;
  if (c.getOptionValueSource('url') === 'env' && c.getOptionValueSource('dataDir') === 'cli') c.setOptionValueWithSource('url', undefined, 'default');
  else if (c.getOptionValueSource('dataDir') !== 'cli') c.setOptionValueWithSource('dataDir', undefined, 'default');
}
