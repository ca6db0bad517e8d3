/* recur.h - the public API of recur, a C library for recurrent neural
 * networks. Include this one header; the sub-headers group it by subsystem:
 *   recur/core.h         status codes, errors, allocation, threads, RNG
 *   recur/safetensors.h  safetensors reader and writer
 *   recur/rnn.h          RNN/LSTM/GRU stacks: forward, BPTT, streaming
 *   recur/nn.h           embedding, linear layer, softmax cross-entropy
 *   recur/lm.h           a token language model (embedding, stack, head) and sampling
 *   recur/ctc.h          connectionist temporal classification loss and decoding
 *   recur/optim.h        optimizers, gradient clipping, learning-rate schedules
 *   recur/data.h         vocabularies, UTF-8 text, batching of text streams
 *   recur/classify.h     sequence classification: text and .ts data, tokenizer, model, metrics
 *   recur/forecast.h     time series from CSV, forecasters, baselines and metrics
 *   recur/speech.h       audio features and a CTC speech recognizer
 *   recur/bpe.h          byte-pair encoding with exact round trips
 *   recur/mt_metrics.h   BLEU and chrF
 *   recur/seq2seq.h      an attention encoder-decoder for translation */
#ifndef RECUR_H
#define RECUR_H

#include "recur/core.h"
#include "recur/safetensors.h"
#include "recur/rnn.h"
#include "recur/nn.h"
#include "recur/lm.h"
#include "recur/ctc.h"
#include "recur/optim.h"
#include "recur/data.h"
#include "recur/checkpoint.h"
#include "recur/classify.h"
#include "recur/speech.h"
#include "recur/forecast.h"
#include "recur/bpe.h"
#include "recur/mt_metrics.h"
#include "recur/memory.h"
#include "recur/seq2seq.h"

#endif
