package reader

// NewQueueReader exposes newQueueReader to the external tests.
var NewQueueReader = newQueueReader
