/**
 * Shadow-DOM styles of <sieve-chat>. Theme with CSS custom properties on the
 * host (--sieve-*) or style the exposed parts (::part(messages), ::part(input)...).
 */
export const STYLES = `
:host {
  --sieve-font: system-ui, -apple-system, 'Segoe UI', sans-serif;
  --sieve-bg: #ffffff;
  --sieve-fg: #1d1f23;
  --sieve-muted: #6b7280;
  --sieve-border: #d9dce1;
  --sieve-accent: #2f6fde;
  --sieve-accent-fg: #ffffff;
  --sieve-user-bg: #e8f0fe;
  --sieve-assistant-bg: #f5f6f8;
  --sieve-error-bg: #fdecea;
  --sieve-error-fg: #8a1c12;
  --sieve-radius: 10px;
  --sieve-gap: 10px;
  display: flex;
  flex-direction: column;
  min-height: 320px;
  font-family: var(--sieve-font);
  color: var(--sieve-fg);
  background: var(--sieve-bg);
  border: 1px solid var(--sieve-border);
  border-radius: var(--sieve-radius);
  overflow: hidden;
  box-sizing: border-box;
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
.progress { padding: var(--sieve-gap); border-bottom: 1px solid var(--sieve-border); font-size: 12px; }
.file { display: grid; grid-template-columns: minmax(0, 1fr) 120px auto; gap: 8px; align-items: center; margin: 2px 0; }
.file .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.file .bytes { color: var(--sieve-muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
.stage { display: grid; grid-template-columns: minmax(0, 1fr) 120px minmax(0, auto); gap: 8px; align-items: center; margin: 2px 0; }
.stage .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.stage .count { color: var(--sieve-muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
.stage[data-state=pending] { color: var(--sieve-muted); }
.stage[data-state=active] .name { font-weight: 600; }
progress { width: 100%; height: 8px; accent-color: var(--sieve-accent); }
.error { margin: var(--sieve-gap); padding: var(--sieve-gap); border-radius: var(--sieve-radius);
  background: var(--sieve-error-bg); color: var(--sieve-error-fg); font-size: 14px; }
.error .detail { font-family: ui-monospace, monospace; font-size: 12px; margin-top: 4px; word-break: break-word; }
.error button { float: right; }
.messages { flex: 1; overflow-y: auto; padding: var(--sieve-gap); display: flex; flex-direction: column; gap: var(--sieve-gap); }
.message { max-width: 92%; padding: 8px 12px; border-radius: var(--sieve-radius); white-space: pre-wrap; word-break: break-word; line-height: 1.45; }
.message.user { align-self: flex-end; background: var(--sieve-user-bg); }
.message.assistant { align-self: flex-start; background: var(--sieve-assistant-bg); }
.message.assistant.streaming .text::after { content: '\\2588'; opacity: 0.35; }
.message.continuation .echo { color: var(--sieve-muted); }
.message.failed { outline: 1px solid var(--sieve-error-fg); }
.stats { margin-top: 6px; font-size: 11px; color: var(--sieve-muted); white-space: normal; font-variant-numeric: tabular-nums; }
.empty { color: var(--sieve-muted); margin: auto; text-align: center; font-size: 14px; max-width: 36em; }
.empty p { margin: 0 0 8px; }
.suggestions { display: flex; flex-direction: column; gap: 6px; align-items: stretch; }
.suggestions button { text-align: left; font-size: 13px; color: var(--sieve-fg); }
/* The developer stats line shows only with the show-stats attribute. */
:host(:not([show-stats])) .stats, :host([show-stats=false]) .stats { display: none !important; }
form { display: flex; gap: 8px; padding: var(--sieve-gap); border-top: 1px solid var(--sieve-border); }
textarea { flex: 1; resize: vertical; min-height: 40px; font: inherit; padding: 8px; color: inherit; background: inherit;
  border: 1px solid var(--sieve-border); border-radius: var(--sieve-radius); }
button { font: inherit; padding: 6px 14px; border-radius: var(--sieve-radius); border: 1px solid var(--sieve-border);
  background: var(--sieve-bg); color: var(--sieve-fg); cursor: pointer; }
button.primary { background: var(--sieve-accent); color: var(--sieve-accent-fg); border-color: var(--sieve-accent); }
button:disabled { opacity: 0.5; cursor: default; }
.status { padding: 0 var(--sieve-gap) 6px; font-size: 12px; color: var(--sieve-muted); min-height: 1.5em; }
/* Phone width: the input gets the whole row, the buttons go under it. */
@media (max-width: 520px) {
  form { flex-wrap: wrap; }
  textarea { flex: 1 1 100%; }
  form button { flex: 1; }
  .message { max-width: 100%; }
  .stage, .file { grid-template-columns: minmax(0, 1fr) 80px; }
  .stage .count, .file .bytes { grid-column: 1 / -1; }
}
`;
