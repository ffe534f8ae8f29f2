// Hands a session signed in on our /login/ page to the HRVSTR SPA on the same origin: the
// SPA reads exactly these four localStorage keys when it starts (contexts/AuthContext.tsx).
// An external file (not inline) so a strict Content-Security-Policy allows it.
(function () {
  var node = document.getElementById("spa-handoff");
  if (!node) return;
  var data = JSON.parse(node.textContent);
  try {
    localStorage.setItem("auth_token", data.auth_token);
    localStorage.setItem("refresh_token", data.refresh_token);
    localStorage.setItem("token_expiry", data.token_expiry);
    localStorage.setItem("user", JSON.stringify(data.user));
  } catch (error) {
    return; // storage refused (private mode): stay here, the link still works without it
  }
  window.location.replace(data.next);
})();
