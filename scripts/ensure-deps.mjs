#!/usr/bin/env node
// Runs before `npm start` and `npm test`, so that the README's quick start really is two commands on a
// fresh machine: installs the locked npm dependencies once, and — as root on Debian, for the programs
// named on the command line (`--apt redis-server chromium`) — installs missing system packages with apt.
// Elsewhere it prints the one command to run instead.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) {
  console.error('switchyard: node_modules missing, running `npm ci` once…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

const aptIndex = process.argv.indexOf('--apt');
const wanted = aptIndex >= 0 ? process.argv.slice(aptIndex + 1) : [];
const onPath = (bin) =>
  [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin'].some(
    (d) => d && existsSync(join(d, bin)),
  );
const missing = wanted.filter((pkg) => !onPath(pkg));
if (missing.length > 0) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && onPath('apt-get')) {
    console.error(`switchyard: installing ${missing.join(', ')} with apt-get (once)…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
      stdio: 'inherit',
      env,
    });
  } else {
    // The one command for this machine: apt on Debian-like systems, Homebrew on macOS.
    const brewNames = { 'redis-server': 'redis', chromium: '--cask chromium' };
    const how =
      process.platform === 'darwin'
        ? missing.map((pkg) => `brew install ${brewNames[pkg] ?? pkg}`).join(' && ')
        : onPath('apt-get')
          ? `sudo apt-get install -y ${missing.join(' ')}`
          : `your package manager (${missing.join(', ')})`;
    console.error(`switchyard: missing ${missing.join(', ')}. Install with: ${how}`);
  }
}
