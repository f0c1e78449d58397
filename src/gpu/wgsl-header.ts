/**
 * The one generated WGSL header (issue 16: "at most one documented generated header"). Every
 * kernel's source is `wgslHeader(...) + <its single .wgsl file>`; the header is the only WGSL
 * that TypeScript writes, and it holds only what WGSL cannot express with an `override`:
 *
 *   1. the kernel tier's activation types (issue 17, src/gpu/tier.ts):
 *        'f32' (and 'tensor', whose non-tensor kernels run as 'f32'):
 *            alias act = f32;  alias act4 = vec4<f32>;  const ACT_F16: bool = false;
 *        'f16' (needs the device feature shader-f16):
 *            enable f16;  alias act = f16;  alias act4 = vec4<f16>;  const ACT_F16: bool = true;
 *      `act` is the element of the activation buffers between ops (normed h, QKV, Q, attention
 *      output, FFN product); kernels load them with f32(...) / vec4<f32>(...) where they reduce
 *      (dot products, softmax, norm statistics, matmul accumulators all stay f32) and store with
 *      act(...) / act4(...). In the 'f32' tier those conversions are identities, so its results
 *      are bit-identical to kernels written in plain f32. Always f32, whatever the tier: the
 *      residual stream (it accumulates every layer's output), weights' scales, norm weights,
 *      biases, the RoPE table, logits (sampling reads them), and the kernels' internal scratch.
 *      ACT_F16 lets a kernel pick an f16-only formulation (both branches type-check in both
 *      tiers; the dead one folds away).
 *   2. `const NAME: u32 = V;` for values that size function-scope arrays or pick a binding's
 *      type (WGSL sizes those only by `const`), e.g. the weight format of kernels/linear.wgsl;
 *   3. `alias NAME = TYPE;` for binding element types a kernel takes in several forms, e.g. the
 *      linear kernels' output element `yt` (act, or f32 for the residual stream and logits).
 *
 * Everything else (tile shapes, feature switches, epilogue kinds) is an `override` or an entry
 * point. The header's text is part of the pipeline cache key, so each tier compiles its own
 * pipelines.
 */
import type { KernelTier } from './tier.ts';

export interface HeaderParts {
  /** u32 consts (array sizes, binding-type switches). */
  consts?: Record<string, number>;
  /** Type aliases (binding element types); values are WGSL types and may use act / act4. */
  aliases?: Record<string, string>;
  /** Extra `enable` directives (e.g. subgroups). */
  enables?: string[];
}

/** Bytes of one activation element (`act`) in this tier. */
export function actBytes(tier: KernelTier): 2 | 4 {
  return tier === 'f16' ? 2 : 4;
}

/** The WGSL header of one kernel for `tier` (see the file comment). */
export function wgslHeader(tier: KernelTier, parts: HeaderParts = {}): string {
  const f16 = tier === 'f16';
  const lines: string[] = [];
  for (const e of [...(f16 ? ['f16'] : []), ...(parts.enables ?? [])]) lines.push(`enable ${e};`);
  lines.push(`// generated header (src/gpu/wgsl-header.ts), tier ${tier}`);
  const t = f16 ? 'f16' : 'f32';
  lines.push(`alias act = ${t};`, `alias act4 = vec4<${t}>;`, `const ACT_F16: bool = ${f16};`);
  for (const [k, v] of Object.entries(parts.consts ?? {})) {
    if (!(Number.isInteger(v) && v >= 0)) throw new RangeError(`wgslHeader: const ${k} must be a non-negative integer, got ${v}`);
    lines.push(`const ${k}: u32 = ${v}u;`);
  }
  for (const [k, v] of Object.entries(parts.aliases ?? {})) lines.push(`alias ${k} = ${v};`);
  return lines.join('\n') + '\n';
}
