/**
 * `sieve tokenize --model DIR --text "..." [--bos] [--chat] [--system S] [--family F]`:
 * prints the ids as a JSON array. --bos adds the leading specials (BOS, or
 * ChatGLM2's [gMASK] sop); --chat formats the text as one user turn (with the
 * model's chat format, which adds its own prefix) before encoding.
 */
import { InvalidOptionError } from '../../errors.ts';
import { nodeSource } from '../../loader/sources.ts';
import { loadTokenizer, type ChatMessage, type TokenizerFamily } from '../../tokenizer/index.ts';
import type { Command } from '../util.ts';

const FAMILIES = ['chatglm2', 'internlm2', 'generic'];

export const tokenize: Command = {
  name: 'tokenize',
  summary: 'print the token ids of a text (or of a one-turn chat) as JSON',
  usage: 'sieve tokenize --model DIR --text TEXT [options]',
  description: "Print the token ids of a text as a JSON array (or of the text as one user turn in the model's chat format, with --chat).",
  options: {
    model: { type: 'string', value: 'DIR', required: true, group: 'Model', help: 'folder with tokenizer.json or tokenizer.model' },
    text: { type: 'string', value: 'TEXT', required: true, group: 'Tokenize', help: 'the text to encode' },
    bos: { type: 'boolean', group: 'Tokenize', help: "add the leading specials (BOS, or ChatGLM2's [gMASK] sop)" },
    chat: { type: 'boolean', group: 'Tokenize', help: 'format the text as one user turn of the chat format first' },
    system: { type: 'string', value: 'TEXT', group: 'Tokenize', help: 'system prompt (with --chat)' },
    family: {
      type: 'string',
      value: 'NAME',
      default: 'from config.json',
      shownOnly: true,
      group: 'Tokenize',
      help: 'tokenizer family: chatglm2, internlm2, generic',
    },
  },
  async run(_argv, v) {
    const values = v as Record<string, string | undefined> & { bos?: boolean; chat?: boolean };
    if (!values.model) throw new InvalidOptionError('--model', 'give the checkpoint folder (with tokenizer.json or tokenizer.model)');
    if (values.text === undefined) throw new InvalidOptionError('--text', 'give the text to tokenize');
    if (values.family !== undefined && !FAMILIES.includes(values.family)) {
      throw new InvalidOptionError('--family', `'${values.family}' is not one of ${FAMILIES.join(', ')}`);
    }
    if (values.system !== undefined && !values.chat) throw new InvalidOptionError('--system', 'only applies with --chat');
    const src = nodeSource(values.model);
    try {
      const tok = await loadTokenizer(src, { family: values.family as TokenizerFamily | undefined });
      let ids: number[];
      if (values.chat) {
        const messages: ChatMessage[] = [];
        if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
        messages.push({ role: 'user', content: values.text });
        ids = tok.formatChat(messages).ids;
      } else {
        ids = tok.encode(values.text, { addSpecial: values.bos ?? false });
      }
      console.log(JSON.stringify(ids));
    } finally {
      await src.close();
    }
    return 0;
  },
};
