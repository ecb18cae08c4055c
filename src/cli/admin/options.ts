/** The connection flags every admin command shares, added in one place. */
import { Option, type Command } from 'commander';

export function addTargetOptions(cmd: Command, need: 'admin' | 'send' = 'admin'): Command {
  cmd
    .option('--url <url>', 'a running server (env POBOX_URL)')
    .option('--data-dir <dir>', "a stopped server's data dir, opened directly (env POBOX_DATA_DIR; default ./.pobox-data)");
  if (need === 'send') cmd.option('--api-key <key>', 'API key with the send scope, for --url (env POBOX_API_KEY)');
  cmd.addOption(new Option('--admin-key <key>', 'API key with the admin scope, for --url (env POBOX_ADMIN_KEY)'));
  return cmd.option('--json', 'print JSON for scripts instead of a table');
}
