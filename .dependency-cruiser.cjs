/**
 * The layering of src/ (ARCHITECTURE.md "Folders"), checked by `npm run lint`:
 *
 *   core <- store, bus <- postoffice <- gateway <- metrics, ops <- server <- cli, index
 *   client <- core only (it runs in browsers and never loads server code)
 *
 * An arrow points from what is imported to what may import it. No cycles anywhere.
 * Outside src/: tools/ (the harness tests and benchmarks share: DynamoDB Local, Redis,
 * free ports, the seeded PRNG, the fake clock) may be imported by test/ and bench/; bench/
 * never imports test/, and tools/ imports neither.
 */
const layer = (from, allowed, comment) => ({
  name: `${from}-imports`,
  severity: 'error',
  comment,
  from: { path: `^src/${from}/` },
  to: { path: '^src/', pathNot: allowed.map((a) => `^src/${a}/`) },
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'An import cycle hides which part depends on which.', from: {}, to: { circular: true } },
    layer('core', ['core'], 'core is the vocabulary (ids, errors, protocol, config): it imports nothing else of pobox.'),
    layer('store', ['core', 'store'], 'Engines know the core types and their own folder only.'),
    layer('bus', ['core', 'bus'], 'A bus carries wake-ups; it knows nothing of stores or sessions.'),
    layer('postoffice', ['core', 'store', 'postoffice'], 'The post office sits on the store contract and never sees a socket or a bus.'),
    layer('gateway', ['core', 'store', 'bus', 'postoffice', 'gateway'], 'The gateway takes optional parts through its extension seam, never by import.'),
    layer('metrics', ['core', 'store', 'bus', 'postoffice', 'gateway', 'metrics'], 'Metrics observe the layers below them.'),
    layer('ops', ['core', 'store', 'bus', 'postoffice', 'gateway', 'metrics', 'ops'], 'Operator extras plug into the gateway; only the composition root loads them.'),
    layer('server', ['core', 'store', 'bus', 'postoffice', 'gateway', 'metrics', 'ops', 'server'], 'The composition root wires everything but the CLI.'),
    layer('client', ['core', 'client'], 'The SDK runs in browsers: it shares the protocol and errors, nothing server-side.'),
    {
      name: 'src-not-to-tests-or-benchmarks',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|tools)/' },
    },
    {
      name: 'bench-not-to-tests',
      severity: 'error',
      comment: 'What benchmarks share with the tests lives in tools/.',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'tools-not-to-tests-or-benchmarks',
      severity: 'error',
      comment: 'tools/ serves test/ and bench/; it depends on neither.',
      from: { path: '^tools/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js'] },
  },
};
