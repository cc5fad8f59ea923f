// What a benchmark run measured: the modelgate commit (and files changed but not committed), and the
// installed versions of the packages it ran.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './servers.ts';

export function describeSource(): { commit: string; uncommittedChanges: string[] } | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const changes = git('status', '--porcelain', '--', 'src', 'bin', 'examples', 'package-lock.json');
    return { commit: git('rev-parse', 'HEAD'), uncommittedChanges: changes.split('\n').filter(Boolean) };
  } catch {
    return undefined;
  }
}

export function readPackageVersion(name: string): string {
  const path = join(REPO_ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}
