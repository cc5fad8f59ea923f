#!/usr/bin/env node
// The `modelgate` command: loads the TypeScript sources through tsx, so a checkout runs after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
