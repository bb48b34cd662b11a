/**
 * What the command-line entry points share (`npm start`: handlers/main.ts, `npm run worker`:
 * handlers/worker.ts): loading the configuration, where a bad value ends the process with a message
 * naming the key, the value and the expectation, and exit code 2.
 */
import { type Config, loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

/** The loaded configuration; on a ConfigError prints `<program>: configuration error` and exits 2. */
export function loadConfigOrExit(program: string): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${program}: configuration error\n  ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
