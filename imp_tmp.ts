const t = performance.now();
await import("mysql2/promise");
console.log("mysql2 import", (performance.now() - t).toFixed(1));
