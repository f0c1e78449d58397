/**
 * `sieve` command dispatcher. Each subcommand lives in src/cli/commands/ and
 * is listed here once.
 */
import { reportError, table, type Command } from './util.ts';
import { info } from './commands/info.ts';
import { inspect } from './commands/inspect.ts';
import { tokenize } from './commands/tokenize.ts';
import { logits } from './commands/logits.ts';
import { generate } from './commands/generate.ts';
import { attention } from './commands/attention.ts';
import { chat } from './commands/chat.ts';
import { serve } from './commands/serve.ts';

const COMMANDS: Command[] = [info, inspect, tokenize, logits, generate, attention, chat, serve];

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const debug = rest.includes('--debug');
  const args = rest.filter((a) => a !== '--debug');
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd || name === 'help' || name === '--help') {
    console.log('usage: sieve <command> [options]\n');
    console.log(table(COMMANDS.map((c) => [c.usage, c.summary])));
    return cmd || name === 'help' || name === '--help' || !name ? 0 : 2;
  }
  try {
    return await cmd.run(args);
  } catch (e) {
    return reportError(e, debug);
  }
}
