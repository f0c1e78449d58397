/**
 * `sieve` command dispatcher (installed as `sieve-llm`). Each subcommand lives
 * in src/cli/commands/ and is listed here once; its options (src/cli/options.ts)
 * give `--help`, the defaults and the strict parsing.
 */
import { version } from '../../package.json';
import { reportError, type Command } from './util.ts';
import { COMMON_OPTIONS, commandHelp, HELP_WIDTH, parseOptions, twoColumns, UsageError, wrap } from './options.ts';
import { info } from './commands/info.ts';
import { inspect } from './commands/inspect.ts';
import { tokenize } from './commands/tokenize.ts';
import { logits } from './commands/logits.ts';
import { generate } from './commands/generate.ts';
import { attention } from './commands/attention.ts';
import { chat } from './commands/chat.ts';
import { serve } from './commands/serve.ts';

const COMMANDS: Command[] = [info, inspect, tokenize, logits, generate, attention, chat, serve];

function topHelp(): string {
  return [
    wrap('usage: sieve-llm <command> [options]   (`sieve` inside the repository)', HELP_WIDTH),
    '',
    wrap('A WebGPU LLM runtime (ChatGLM2, InternLM2) with SampleAttention sparse prefill; in Node through Dawn.', HELP_WIDTH),
    '',
    'Commands:',
    twoColumns(COMMANDS.map((c) => [c.name, c.summary])),
    '',
    'Options:',
    twoColumns([
      ['-h, --help', "show this help; `sieve-llm <command> --help` lists the command's options"],
      ['-v, --version', 'print the version'],
    ]),
    '',
    wrap(
      `Every command also takes ${Object.keys(COMMON_OPTIONS)
        .map((o) => `--${o}`)
        .join(', ')}.`,
      HELP_WIDTH,
    ),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const cmd = rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (rest[0] && !cmd) return reportError(new UsageError(`unknown command '${rest[0]}'`), false);
    console.log(cmd ? commandHelp(cmd) : topHelp());
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(version);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    const what = name.startsWith('-') ? `unknown option '${name}'` : `unknown command '${name}'`;
    return reportError(new UsageError(`${what}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`), false);
  }
  const debug = rest.includes('--debug');
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(commandHelp(cmd));
      return 0;
    }
    const values = parseOptions(cmd.name, rest, cmd.options);
    if (values.verbose) process.env.SIEVE_VERBOSE = '1';
    return await cmd.run(
      rest.filter((a) => a !== '--debug' && a !== '--verbose'),
      values,
    );
  } catch (e) {
    return reportError(e, debug, cmd.name);
  }
}
