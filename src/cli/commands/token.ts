/**
 * `pobox token --user alice --device phone [--ttl 1h]`: print a user token signed with
 * the configured secret (the first of auth.secrets, or the data dir secret that
 * `pobox serve` uses, created here if it does not exist yet).
 */
import type { Command } from 'commander';
import { PoboxError } from '../../core/errors.js';
import { mintToken, parseTtl, resolveSecrets } from '../../gateway/auth.js';
import { addServerOptions, serverConfigOf } from '../../server/config.js';

export function registerToken(program: Command): void {
  addServerOptions(
    program
      .command('token')
      .description('mint a user token (JWT) for a device, signed with the configured secret')
      .requiredOption('--user <user>', 'user id (the token sub)')
      .requiredOption('--device <device>', 'device id')
      .option('--ttl <ttl>', 'lifetime: 90s, 15m, 1h, 7d', '1h'),
    'token',
  ).action(async (opts: { user: string; device: string; ttl: string }, cmd: Command) => {
    const config = serverConfigOf(cmd);
    const ttlSeconds = parseTtl(opts.ttl);
    const { secrets } = resolveSecrets(config);
    const secret = secrets[0];
    if (!secret) {
      throw new PoboxError('BAD_REQUEST', 'this server verifies tokens with an EdDSA public key (auth.publicKey); mint tokens with the matching private key', {
        field: 'auth.secrets',
      });
    }
    const token = await mintToken({
      secret,
      user: opts.user,
      device: opts.device,
      ttlSeconds,
      ...(config.auth.issuer ? { issuer: config.auth.issuer } : {}),
      ...(config.auth.audience ? { audience: config.auth.audience } : {}),
    });
    process.stdout.write(token + '\n');
  });
}
