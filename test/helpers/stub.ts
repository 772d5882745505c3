// The stub upstream in the test's own process, on a free port, so a test can watch what the proxy sent it.
import { StubServer, type StubOptions } from '../../src/stub/server.js'

export async function startStub(opts: StubOptions = {}): Promise<{ stub: StubServer; port: number; origin: string }> {
  const stub = new StubServer(opts)
  const port = await stub.listen(0, '127.0.0.1')
  return { stub, port, origin: `http://127.0.0.1:${port}` }
}
