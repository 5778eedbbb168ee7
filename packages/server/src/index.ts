// The server package's API lands with its own issue; the package is laid out now so the workspace builds as one.
export {};
