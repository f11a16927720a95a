// Shared by the staff pages (command centre, DPO view): signing in and out, and what a refused
// sign-in says. Each page passes what to do once signed in or out.
"use strict";

// Locked out (429: too many failed sign-ins, with when to try again) or bad credentials.
function signInRefusal(response) {
  if (response.status !== 429) return "Unknown user or wrong password.";
  const minutes = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After") || 60) / 60));
  return `Too many failed sign-ins: try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

// The sign-in form's submit handler: the session cookie is set by the answer, then signedIn().
async function signIn(event, signedIn) {
  event.preventDefault();
  const field = (id) => document.getElementById(id);
  field("login-error").textContent = "";
  const response = await fetch("/api/v1/auth/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: field("username").value, password: field("password").value }),
  });
  if (!response.ok) {
    field("login-error").textContent = signInRefusal(response);
    return;
  }
  field("password").value = "";
  await signedIn();
}

async function signOut(signedOut) {
  await fetch("/api/v1/auth/logout", { method: "POST", credentials: "same-origin" });
  signedOut();
}
