/**
 * bench/tokenize: CPU tokenizer throughput (no GPU involved).
 *   npm run bench -- bench/tokenize.ts [--json FILE] [--model PATH] [--mb 1] [--tokens 100000]
 * - MB/s encoding a generated mixed English/Chinese text (default 1 MB of
 *   UTF-8) with a SentencePiece BPE model (default: the bpe_zh fixture);
 * - time to tokenize a prompt of --tokens tokens (target: under 1 s), with a
 *   fresh tokenizer (cold BPE cache) and warm.
 * Conversion of tokenizer.model (load) is timed separately. Medians of 5
 * after one warm-up; the text is seeded, so runs are comparable.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { tokenizerFromSentencePiece } from '../test/helpers/tokenizer.ts';
import { Rng } from '../src/util/rng.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({ model: { type: 'string' }, mb: { type: 'string' }, tokens: { type: 'string' } });
const modelPath = String(args.model ?? '../shared/fixtures/tokenizers/bpe_zh.model');
const targetBytes = Math.round(Number(args.mb ?? 1) * 1024 * 1024);
const promptTokens = Number(args.tokens ?? 100_000);

const EN = (
  'the a of and to in is was that it for on with as by at from this be are have not but or one all they ' +
  'which their time would there when more some model attention sparse prefill token window query key value head layer ' +
  'little girl named Lily played park ball happy friend story morning garden river'
).split(' ');
const ZH =
  '我们今天去公园玩了一天天气很好注意力稀疏预填充模型的是在有和人这中大为上个国不以会到时说要就出也得里后自' +
  '以之于能下过子可对生年同学习心工作开发问题答案你好世界语言数据计算机器智能网络结构层头查询键值窗口';
const PUNCT_EN = ['.', ',', '!', '?', ';'];
const PUNCT_ZH = ['。', '，', '！', '？', '；'];

/** Seeded mixed English/Chinese prose of about `bytes` UTF-8 bytes. */
function mixedText(bytes: number, seed: number): string {
  const rng = new Rng(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    let s: string;
    if (rng.next() < 0.5) {
      const n = 5 + rng.int(15);
      const words = Array.from({ length: n }, () => EN[rng.int(EN.length)]);
      if (rng.next() < 0.2) words.splice(rng.int(n), 0, String(rng.int(100000)));
      words[0] = words[0][0].toUpperCase() + words[0].slice(1);
      s = words.join(' ') + PUNCT_EN[rng.int(PUNCT_EN.length)] + ' ';
    } else {
      const n = 8 + rng.int(30);
      s = Array.from({ length: n }, () => ZH[rng.int(ZH.length)]).join('') + PUNCT_ZH[rng.int(PUNCT_ZH.length)];
    }
    if (rng.next() < 0.05) s += '\n';
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(fn: () => void, iters: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const bytes = readFileSync(modelPath);
let t0 = performance.now();
const tok = await tokenizerFromSentencePiece(bytes, { name: modelPath });
const loadMs = performance.now() - t0;
t0 = performance.now();
await tokenizerFromSentencePiece(bytes, { name: modelPath });
const loadCachedMs = performance.now() - t0;

// Throughput on ~1 MB.
const text = mixedText(targetBytes, 1);
const textBytes = Buffer.byteLength(text);
let nTokens = 0;
const coldMs = time(() => {
  nTokens = tok.encode(text).length;
}, 1)[0];
const warmMs = median(time(() => tok.encode(text), 5));
const mbPerS = (ms: number) => textBytes / 1024 / 1024 / (ms / 1000);

// A prompt of promptTokens tokens: cut a longer text at the character where the count is reached.
const bytesPerToken = textBytes / nTokens;
let prompt = mixedText(Math.ceil(promptTokens * bytesPerToken * 1.1), 2);
const ids = tok.encode(prompt);
if (ids.length > promptTokens) {
  const keep = Math.floor(prompt.length * (promptTokens / ids.length));
  prompt = prompt.slice(0, keep);
  while (tok.encode(prompt).length < promptTokens) prompt += mixedText(64, prompt.length).slice(0, 8);
}
const fresh = await tokenizerFromSentencePiece(bytes, { name: modelPath });
let promptIds = 0;
const promptColdMs = time(() => {
  promptIds = fresh.encode(prompt, { addSpecial: true }).length;
}, 1)[0];
const promptWarmMs = median(time(() => tok.encode(prompt, { addSpecial: true }), 5));

// Chinese without spaces: one pre-token of the whole prompt (no ▁ to cut at).
const zhChars = Math.ceil(promptTokens / 2);
const zhRng = new Rng(3);
const zhPrompt = Array.from({ length: zhChars }, () => String.fromCodePoint(0x4e00 + zhRng.int(0x5000))).join('');
const zhFresh = await tokenizerFromSentencePiece(bytes, { name: modelPath });
let zhIds = 0;
const zhMs = time(() => {
  zhIds = zhFresh.encode(zhPrompt, { addSpecial: true }).length;
}, 1)[0];

const cpu = cpus()[0]?.model ?? 'cpu';
const adapter = {
  vendor: 'cpu',
  architecture: cpu,
  device: `${cpus().length} cores`,
  description: `node ${process.version}`,
  isSoftware: false,
  backend: 'dawn-node',
  features: [],
  limits: {},
} as unknown as ReturnType<typeof adapterRecord>;
const rows: (string | number)[][] = [
  ['load tokenizer.model (convert)', '', '', loadMs.toFixed(1), ''],
  ['load again (cached conversion)', '', '', loadCachedMs.toFixed(1), ''],
  [`encode ${(textBytes / 1048576).toFixed(2)} MB mixed en/zh, cold`, textBytes, nTokens, coldMs.toFixed(1), mbPerS(coldMs).toFixed(2)],
  [`encode ${(textBytes / 1048576).toFixed(2)} MB mixed en/zh, warm`, textBytes, nTokens, warmMs.toFixed(1), mbPerS(warmMs).toFixed(2)],
  [
    `prompt of ${promptIds} tokens, fresh tokenizer`,
    Buffer.byteLength(prompt),
    promptIds,
    promptColdMs.toFixed(1),
    mbPerS((promptColdMs * textBytes) / Buffer.byteLength(prompt)).toFixed(2),
  ],
  [
    `prompt of ${promptIds} tokens, warm`,
    Buffer.byteLength(prompt),
    promptIds,
    promptWarmMs.toFixed(1),
    mbPerS((promptWarmMs * textBytes) / Buffer.byteLength(prompt)).toFixed(2),
  ],
  [
    `prompt of ${zhIds} tokens, Chinese, no spaces`,
    Buffer.byteLength(zhPrompt),
    zhIds,
    zhMs.toFixed(1),
    mbPerS((zhMs * textBytes) / Buffer.byteLength(zhPrompt)).toFixed(2),
  ],
];
finish(
  {
    bench: 'tokenize',
    date: new Date().toISOString(),
    adapter,
    timing: 'wall clock (performance.now), CPU only',
    header: ['case', 'bytes', 'tokens', 'ms', 'MB/s'],
    rows,
    results: [
      {
        model: modelPath,
        loadMs,
        loadCachedMs,
        textBytes,
        tokens: nTokens,
        coldMs,
        warmMs,
        mbPerSCold: mbPerS(coldMs),
        mbPerSWarm: mbPerS(warmMs),
        promptTokens: promptIds,
        promptBytes: Buffer.byteLength(prompt),
        promptColdMs,
        promptWarmMs,
        promptUnder1s: promptColdMs < 1000,
        zhPromptTokens: zhIds,
        zhPromptMs: zhMs,
      },
    ],
  },
  args.json,
);
