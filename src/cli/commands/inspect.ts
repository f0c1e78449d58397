/**
 * `sieve inspect --model DIR|URL [--context N] [--weights f16|q8|q4|f32] [--group N] [--budget MB] [--json]`:
 * family, dimensions, tensors, dtypes, bytes and the memory plan of a
 * checkpoint folder (reads config.json and the safetensors headers only).
 * A broken checkpoint exits 1 with one line naming the file and the fault.
 */
import { InvalidOptionError, SieveError } from '../../errors.ts';
import { getGpu } from '../../gpu/device.ts';
import { openSource } from '../../loader/sources.ts';
import { readModel } from '../../loader/model.ts';
import { checkPlan, type PlanLimits } from '../../loader/memory-plan.ts';
import type { LoadFormat } from '../../loader/layout.ts';
import { table, type Command } from '../util.ts';
import { DEFAULT_WEIGHTS } from '../../defaults.ts';

/** WebGPU's default limits: what any adapter guarantees (used when no GPU is found). */
const DEFAULT_LIMITS: PlanLimits = { maxBufferSize: 256 * 2 ** 20, maxStorageBufferBindingSize: 128 * 2 ** 20 };
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** One line per distinct fallback, with the tensors it applies to. */
function groupNotes(tensors: { name: string; note?: string }[]): string[] {
  const by = new Map<string, string[]>();
  for (const t of tensors) if (t.note) by.set(t.note, [...(by.get(t.note) ?? []), t.name]);
  return [...by].map(([note, names]) => `${note} (${names.length > 3 ? `${names.length} tensors: ${names.slice(0, 2).join(', ')}...` : names.join(', ')})`);
}

function intOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidOptionError(name, `expected a positive integer, got '${v}'`);
  return n;
}

export const inspect: Command = {
  name: 'inspect',
  summary: "print a checkpoint's family, dimensions, tensors and memory plan",
  usage: 'sieve inspect --model DIR|URL [options]',
  description:
    "Print a checkpoint's family, dimensions, tensors and the memory plan of loading it (reads " +
    'config.json and the tensor headers only). A broken checkpoint exits 1 with one line naming the file and the fault.',
  options: {
    model: { type: 'string', value: 'DIR|URL', group: 'Model', help: 'checkpoint folder, or an http(s) URL of one (required)' },
    weights: {
      type: 'string',
      value: 'FMT',
      default: 'auto',
      shownOnly: true,
      group: 'Model',
      help: 'weight format to plan for: auto (f16), f32, f16, q8, q4',
    },
    group: { type: 'string', value: 'N', default: '32', shownOnly: true, group: 'Model', help: 'q8/q4 quantization group size' },
    context: { type: 'string', value: 'N', default: 'min(model, 4096)', shownOnly: true, group: 'Model', help: 'KV cache positions to plan for' },
    budget: { type: 'string', value: 'MB', group: 'Plan', help: 'fail the plan above this many MiB' },
    'no-gpu': { type: 'boolean', group: 'Plan', help: "plan against WebGPU's default limits instead of the adapter's" },
    json: { type: 'boolean', group: 'Plan', help: 'print JSON instead of tables' },
  },
  async run(_argv, v) {
    const values = v as Record<string, string | undefined> & { json?: boolean; 'no-gpu'?: boolean };
    if (!values.model) throw new InvalidOptionError('model', 'is required: a checkpoint folder (config.json + safetensors)');
    const weights = values.weights ?? 'auto';
    if (!['auto', 'f32', 'f16', 'q8', 'q4'].includes(weights))
      throw new InvalidOptionError('weights', `expected auto, f32, f16, q8 or q4, got '${values.weights}'`);
    const format = (weights === 'auto' ? DEFAULT_WEIGHTS : weights) as LoadFormat; // auto: the engine's default
    const contextLength = intOpt('context', values.context);
    const groupSize = intOpt('group', values.group);
    const budgetMb = intOpt('budget', values.budget);

    const src = openSource(values.model); // a folder, or an http(s) URL of one (Range requests)
    let limits = DEFAULT_LIMITS;
    let adapter = 'WebGPU default limits (no adapter queried)';
    try {
      const m = await readModel(src);
      if (!values['no-gpu']) {
        try {
          const ctx = await getGpu();
          limits = { maxBufferSize: ctx.limits.maxBufferSize, maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize };
          adapter = `${ctx.info.vendor} ${ctx.info.description || ctx.info.architecture}`.trim();
          ctx.destroy();
        } catch (e) {
          if (!(e instanceof SieveError)) throw e;
          adapter = `WebGPU default limits (${e.message.slice(0, 60)}...)`;
        }
      }
      const plan = checkPlan(m.spec, m.plan, limits, { format, groupSize, contextLength, budgetBytes: budgetMb ? budgetMb * 2 ** 20 : undefined });
      const dtypes: Record<string, number> = {};
      for (const e of m.checkpoint.entries) dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + 1;
      const { config: _config, ...spec } = m.spec;
      const out = {
        model: values.model,
        spec,
        files: m.checkpoint.files,
        tensors: m.checkpoint.entries.length,
        dtypes,
        fileBytes: m.checkpoint.totalBytes,
        dropped: m.plan.dropped,
        adapter,
        limits,
        plan: { ...plan, tensors: undefined, parts: plan.tensors.reduce((s, t) => s + t.parts.length, 0) },
      };
      if (values.json) {
        console.log(JSON.stringify(out, null, 2));
        return 0;
      }
      const s = m.spec;
      console.log(
        table(
          [
            ['family', `${s.family} (model_type '${s.modelType}')`],
            ['dim / layers', `${s.dim} / ${s.nLayers}`],
            ['heads / KV heads / head dim', `${s.nHeads} / ${s.nKvHeads} / ${s.headDim}`],
            ['ffn / vocab', `${s.ffnDim} / ${s.vocabSize}`],
            [
              'rope',
              `${s.rope.variant}, base ${s.rope.base}, rotary dims ${s.rope.rotaryDim}${s.rope.scaling ? `, ${s.rope.scaling.type} x${s.rope.scaling.factor}` : ''}`,
            ],
            ['context (trained)', s.contextLength],
            ['files', m.checkpoint.files.join(', ')],
            [
              'tensors',
              `${m.checkpoint.entries.length} (${Object.entries(dtypes)
                .map(([k, v]) => `${v} ${k}`)
                .join(', ')})${m.plan.dropped.length ? `, ${m.plan.dropped.length} dropped` : ''}`,
            ],
            ['file bytes', MiB(m.checkpoint.totalBytes)],
          ],
          ['model', values.model],
        ),
      );
      console.log();
      console.log(
        table(
          [
            ['weights', `${MiB(plan.weightsBytes)} (${plan.format}, ${out.plan.parts} buffers)`],
            ['KV cache', `${MiB(plan.kvCacheBytes)} (${plan.contextLength} tokens, ${plan.kvDtype})`],
            ['activations', `${MiB(plan.activationBytes)} (prefill chunk ${plan.prefillChunk})`],
            ['total', MiB(plan.totalBytes)],
            ['largest buffer', `${MiB(plan.largestBufferBytes)} (binding limit ${MiB(limits.maxStorageBufferBindingSize)}, ${adapter})`],
            ...groupNotes(plan.tensors).map((n) => ['note', n]),
          ],
          ['memory plan', ''],
        ),
      );
      return 0;
    } finally {
      await (src as { close?: () => Promise<void> }).close?.();
    }
  },
};
