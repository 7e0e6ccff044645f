// componentize-js takes one module: the guest SDK is bundled in, and the WIT imports
// (`mcp-registry:plugin/...`, `wasi:...`) stay imports for the component to satisfy.
export default {
  input: 'app.js',
  external: /^(mcp-registry|wasi):/,
  output: { file: 'bundle.js', format: 'esm' },
};
