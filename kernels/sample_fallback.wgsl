// SampleAttention dense fallback, after the selection (kernels/sample_select.wgsl): lists the
// KV groups (or heads, per-head selection) the selection flagged dense and writes the indirect
// dispatch of the fallback pass (kernels/attention_prefill.wgsl MODE 0, FALLBACK 1), so the fused
// sparse pass skips those groups and the dense kernel's code runs them at its own rate.
// Workgroup: 1 thread (nKvHeads flags, a serial compaction). Dispatch: (1, 1, 1).
// The header (dense plan) gives QR, the rows per workgroup of the fallback pass.
//
// Bindings (Params at 6 from the header):
//   sel:    (nKvHeads, capacity + 1) u32 lists, (nKvHeads) u32 flags, (nKvHeads) u32 flagged ids (written)
//   fbArgs: (3) u32 dispatchWorkgroupsIndirect arguments: tiles (0 when none flagged), nFlagged, 1

@group(0) @binding(0) var<storage, read_write> sel: array<u32>;
@group(0) @binding(3) var<storage, read_write> fbArgs: array<u32>;

@compute @workgroup_size(1)
fn main() {
  let flags = p.nKvHeads * (p.capacity + 1u);
  let list = flags + p.nKvHeads;
  var n = 0u;
  for (var h = 0u; h < p.nKvHeads; h++) {
    if (sel[flags + h] != 0u) { sel[list + n] = h; n++; }
  }
  fbArgs[0] = select(0u, (p.rows * p.group + QR - 1u) / QR, n > 0u);
  fbArgs[1] = n;
  fbArgs[2] = 1u;
}
