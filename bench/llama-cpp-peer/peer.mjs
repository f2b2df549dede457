// llama.cpp as the peer for `perimeter bench inference`: the same GGUF, the same prompt tokens
// (the file `perimeter bench inference --save-prompt` writes, chat template included), the
// same thread count, greedy decoding, end-of-text ignored. Measured as a client sees it:
// time to first token, prompt tokens / that time, decode tokens/s after the first token.
// With --follow-up-file (what `--save-follow-up` writes: the text a follow-up question adds after
// the first answer), also the time to first token of follow-ups continuing that conversation.
//   node peer.mjs --model FILE --prompt-file FILE [--follow-up-file FILE] [--threads 2] [--decode-tokens 128] [--runs 3]
import fs from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const modelPath = arg("model");
const promptFile = arg("prompt-file");
const followUpFile = arg("follow-up-file");
const threads = Number(arg("threads", "2"));
const decodeTokens = Number(arg("decode-tokens", "128"));
const runs = Number(arg("runs", "3"));
if (!modelPath || !promptFile) {
  console.error("usage: node peer.mjs --model FILE --prompt-file FILE [--threads N] [--decode-tokens N] [--runs N]");
  process.exit(2);
}

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const loadStart = performance.now();
const model = await llama.loadModel({ modelPath });
const loadS = (performance.now() - loadStart) / 1000;
const tokens = model.tokenize(fs.readFileSync(promptFile, "utf8"), true);
const context = await model.createContext({
  contextSize: tokens.length + decodeTokens + 128, // room for a follow-up question
  threads: { ideal: threads, min: threads },
});
const sequence = context.getSequence();

async function generate(input, maxTokens) {
  await sequence.clearHistory();
  const start = performance.now();
  let n = 0, first = 0, last = 0;
  for await (const _ of sequence.evaluate(input, { temperature: 0 })) {
    n += 1;
    last = performance.now();
    if (n === 1) first = last;
    if (n >= maxTokens) break;
  }
  return { ttftMs: first - start, decodeTps: n > 1 ? (n - 1) / ((last - first) / 1000) : null, n };
}

await generate(model.tokenize("Hello"), 4); // warm-up, as on our side
const results = [];
for (let i = 0; i < runs; i++) results.push(await generate(tokens, decodeTokens));
// The conversation: the first answer ends at end-of-text (or the token limit), then each run
// goes back to just after it and asks the follow-up; the context keeps what it computed.
async function followUps(suffix) {
  await sequence.clearHistory();
  let n = 0;
  for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
    n += 1;
    if (model.isEogToken(token) || n >= decodeTokens) break;
  }
  const afterAnswer = sequence.contextTokens.length;
  const ttfts = [];
  for (let i = 0; i < runs; i++) {
    await sequence.eraseContextTokenRanges([{ start: afterAnswer, end: sequence.contextTokens.length }]);
    const start = performance.now();
    for await (const _ of sequence.evaluate(suffix, { temperature: 0 })) {
      ttfts.push(performance.now() - start);
      break;
    }
  }
  return { ttfts, tokens: afterAnswer + suffix.length, newTokens: suffix.length };
}
const followUp = followUpFile ? await followUps(model.tokenize(fs.readFileSync(followUpFile, "utf8"), true)) : null;
const median = (xs) => xs.filter((x) => x != null).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ttft = median(results.map((r) => r.ttftMs));
console.log(JSON.stringify({
  engine: `llama.cpp (node-llama-cpp ${JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url))).version}, prebuilt CPU)`,
  model: modelPath,
  threads,
  runs,
  load_s: loadS,
  prompt_tokens: tokens.length,
  decode_tokens: Math.min(...results.map((r) => r.n)),
  time_to_first_token_ms: ttft,
  prompt_tokens_per_s: tokens.length / (ttft / 1000),
  decode_tokens_per_s: median(results.map((r) => r.decodeTps)),
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  follow_up_tokens: followUp?.tokens ?? null,
  follow_up_new_tokens: followUp?.newTokens ?? null,
  follow_up_time_to_first_token_ms: followUp ? median(followUp.ttfts) : null,
}));
await context.dispose();
await model.dispose();
