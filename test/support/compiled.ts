/**
 * The program as the package ships it, for tests of what only the compiled code does
 * differently (a worker thread's module is loaded by URL: entry.js beside host.js, no
 * tsx). The build in dist/ is not run by the tests and may be stale, so this compiles
 * src/ with the project's own TypeScript into a temp dir laid out like the package: dist/src/**.js, bin/pobox.js, package.json, and node_modules linked to the
 * repository's. Run it with `node <root>/bin/pobox.js ...`.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { tempDir, type TempDir } from './temp-dir.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

export interface CompiledPackage extends TempDir {
  /** bin/pobox.js of the compiled copy. */
  readonly bin: string;
}

export function compilePackage(): CompiledPackage {
  const dir = tempDir('pobox-compiled-');
  // File by file (no type check: tsc checks in lint and the tests' typecheck), as ES modules.
  for (const file of tsFiles(join(REPO, 'src'))) {
    const out = join(dir.path, 'dist', relative(REPO, file)).replace(/\.ts$/, '.js');
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  mkdirSync(join(dir.path, 'bin'));
  copyFileSync(join(REPO, 'bin', 'pobox.js'), join(dir.path, 'bin', 'pobox.js'));
  copyFileSync(join(REPO, 'package.json'), join(dir.path, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(dir.path, 'node_modules'), 'dir');
  return { ...dir, bin: join(dir.path, 'bin', 'pobox.js') };
}
