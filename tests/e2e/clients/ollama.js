// The ollama npm client against the proxy's Ollama API: list the models, stream an answer,
// and a tool round trip (the model calls get_weather, whole and streamed; the result goes
// back, it answers).
const { Ollama } = require('ollama');

const given = JSON.parse(process.argv[2]);
const client = new Ollama({ host: given.url, headers: { Authorization: `Bearer ${given.key}` } });

(async () => {
  const listed = await client.list();
  let streamed = '';
  for await (const part of await client.chat({ model: given.model, stream: true,
      messages: [{ role: 'user', content: 'Hello?' }] })) {
    streamed += part.message.content;
  }
  const question = { role: 'user', content: given.question };
  const tools = [{ type: 'function', function: given.tool }];
  const called = await client.chat({ model: given.model, messages: [question], tools });
  const calls = called.message.tool_calls.map(
    call => [call.function.name, call.function.arguments]);
  const streamedCalls = [];
  for await (const part of await client.chat({ model: given.model, messages: [question], tools,
                                               stream: true })) {
    for (const call of part.message.tool_calls || []) {
      streamedCalls.push([call.function.name, call.function.arguments]);
    }
  }
  const answered = await client.chat({ model: given.model, tools, messages: [
    question, called.message, { role: 'tool', tool_name: calls[0][0], content: given.result }] });
  console.log(JSON.stringify({ models: listed.models.map(model => model.name), streamed, calls,
                               streamedCalls, answer: answered.message.content }));
})().catch(error => { console.error(error); process.exit(1); });
