// Lints an e-mail's HTML (on stdin) against caniemail.com's data for the clients our readers
// use; prints {"errors": [...], "warnings": [...]} as JSON (errors: not supported at all). Run by tests/test_email_clients.py.
const { doIUseEmail } = require("@jsx-email/doiuse-email");

const CLIENTS = ["gmail.*", "outlook.windows", "apple-mail.*", "yahoo.*"];
let html = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { html += chunk; });
process.stdin.on("end", () => {
  const result = doIUseEmail(html, { emailClients: CLIENTS });
  process.stdout.write(JSON.stringify({ errors: result.errors || [], warnings: result.warnings || [] }));
});
