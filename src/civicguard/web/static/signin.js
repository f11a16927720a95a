// Shared by the staff pages (command centre, DPO view): what a refused sign-in says.
"use strict";

// Locked out (429: too many failed sign-ins, with when to try again) or bad credentials.
function signInRefusal(response) {
  if (response.status !== 429) return "Unknown user or wrong password.";
  const minutes = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After") || 60) / 60));
  return `Too many failed sign-ins: try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}
