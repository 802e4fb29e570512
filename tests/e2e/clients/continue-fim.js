// Continue's model adapters (@continuedev/openai-adapters, the code its autocomplete calls)
// against the proxy: fill a gap with fimStream, as Continue's Mistral and OpenAI-compatible
// providers do, reading the streamed chunks to the end.
const { pathToFileURL } = require('url');

const given = JSON.parse(process.argv[2]);

(async () => {
  // an ES module: found where NODE_PATH says, then imported by its file
  const entry = require.resolve('@continuedev/openai-adapters');
  const { constructLlmApi } = await import(pathToFileURL(entry).href);
  const api = constructLlmApi({ provider: given.provider, apiBase: `${given.url}/v1/`,
                                apiKey: given.key });
  let text = '';
  let chunks = 0;
  const body = { model: given.model, prompt: given.prompt, suffix: given.suffix,
                 max_tokens: given.max_tokens, temperature: 0 };
  for await (const chunk of api.fimStream(body, new AbortController().signal)) {
    text += chunk.choices[0].delta.content ?? '';
    chunks += 1;
  }
  console.log(JSON.stringify({ text, chunks }));
})().catch(error => { console.error(error); process.exit(1); });
