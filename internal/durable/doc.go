// Package durable holds the file-system steps that make a node's files
// survive a power cut: what an fsync of a file does not cover (the
// directory entries that lead to it).
package durable
