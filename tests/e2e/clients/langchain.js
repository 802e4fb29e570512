// LangChain JS's ChatOpenAI against the proxy: stream an answer, then bindTools and a tool
// round trip (the model calls get_weather, whole and streamed; a ToolMessage brings the
// result, it answers).
const { ChatOpenAI } = require('@langchain/openai');
const { HumanMessage, ToolMessage } = require('@langchain/core/messages');

const given = JSON.parse(process.argv[2]);
const chat = new ChatOpenAI({ model: given.model, apiKey: given.key, maxRetries: 0,
                              configuration: { baseURL: `${given.url}/v1` } });

(async () => {
  let streamed = '';
  for await (const chunk of await chat.stream('Hello?')) streamed += chunk.content;
  const bound = chat.bindTools([{ type: 'function', function: given.tool }]);
  const question = new HumanMessage(given.question);
  const called = await bound.invoke([question]);
  const calls = called.tool_calls.map(call => [call.name, call.args]);
  let gathered;  // the same call, streamed: its deltas gathered into one message
  for await (const chunk of await bound.stream([question])) {
    gathered = gathered === undefined ? chunk : gathered.concat(chunk);
  }
  const streamedCalls = gathered.tool_calls.map(call => [call.name, call.args]);
  const result = new ToolMessage({ content: given.result, tool_call_id: called.tool_calls[0].id });
  const answered = await bound.invoke([question, called, result]);
  console.log(JSON.stringify({ streamed, calls, streamedCalls, answer: answered.content }));
})().catch(error => { console.error(error); process.exit(1); });
