#!/usr/bin/env node
// Runs the compiled CLI (built by `npm ci` through the prepare script, or `npm run build`).
import { runCli } from '../dist/src/cli/main.js';

runCli();
