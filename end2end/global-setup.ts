import { startServer } from "./server";
import { PORT } from "./playwright.config";

export default async function globalSetup() {
  const server = await startServer(PORT);
  return async () => {
    await server.stop();
  };
}
