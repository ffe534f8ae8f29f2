// The checkout success page waits for Stripe's webhook: it polls tier-info until the plan or
// the purchased credits change, then says so. A file, not an inline script: the site's
// Content-Security-Policy allows scripts from our own origin only.
(function () {
  var box = document.getElementById("activation");
  if (box.dataset.activated === "true") return;
  var baseline = JSON.parse(document.getElementById("checkout-baseline").textContent);
  var names = JSON.parse(document.getElementById("tier-names").textContent);
  var tries = 0;
  function changed(data) {
    if (baseline.kind === "bundle") return data.credits.purchased !== baseline.purchased;
    if (baseline.kind === "plan") return data.tier !== baseline.tier;
    return data.tier !== baseline.tier || data.credits.purchased !== baseline.purchased;
  }
  function show(data) {
    box.dataset.activated = "true";
    var p = document.createElement("p");
    p.className = "status ok";
    p.textContent = "You are on " + (names[data.tier] || data.tier) + " with " +
      data.credits.remaining.toLocaleString("en-US") + " credits left.";
    box.replaceChildren(p);
  }
  function poll() {
    tries += 1;
    fetch(box.dataset.pollUrl, {credentials: "same-origin", cache: "no-store",
                                       headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.data && changed(body.data)) { show(body.data); return; }
        if (tries < 60) { setTimeout(poll, 2000); }
        else {
          box.querySelector("p").textContent = "Still waiting for Stripe. Your billing page will show the plan once it lands.";
        }
      })
      .catch(function () { if (tries < 60) setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
