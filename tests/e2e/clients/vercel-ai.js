// The Vercel AI SDK with its OpenAI-compatible provider against the proxy: stream an answer
// (streamText), then generateText with a tool it runs itself until the model answers, and the
// same with streamText.
const { createOpenAICompatible } = require('@ai-sdk/openai-compatible');
const { generateText, jsonSchema, stepCountIs, streamText, tool } = require('ai');

const given = JSON.parse(process.argv[2]);
const provider = createOpenAICompatible({ name: 'oai-proxy', baseURL: `${given.url}/v1`,
                                          apiKey: given.key, includeUsage: true });

(async () => {
  let streamed = '';
  const stream = streamText({ model: provider(given.model), prompt: 'Hello?', maxRetries: 0 });
  for await (const text of stream.textStream) streamed += text;
  const calls = [];
  const tools = { [given.tool.name]: tool({
    description: given.tool.description, inputSchema: jsonSchema(given.tool.parameters),
    execute: async input => { calls.push([given.tool.name, input]); return given.result; },
  }) };
  const answered = await generateText({ model: provider(given.model), prompt: given.question,
                                        tools, stopWhen: stepCountIs(3), maxRetries: 0 });
  // the same loop streamed: the call read from the stream's deltas
  const looped = streamText({ model: provider(given.model), prompt: given.question, tools,
                              stopWhen: stepCountIs(3), maxRetries: 0 });
  console.log(JSON.stringify({ streamed, calls, answer: answered.text,
                               streamedAnswer: await looped.text,
                               usage: (await stream.usage).outputTokens > 0 }));
})().catch(error => { console.error(error); process.exit(1); });
