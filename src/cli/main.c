/* main.c - the `recur` command-line tool: dispatches to one command per
 * file (train.c, sample.c, eval.c) and answers --version and --help.
 * Exit codes: 0 ok, 1 failure, 2 usage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "speech_cli.h"
#include "forecast_cli.h"
#include "trainer.h"
#include "translate_cli.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "Usage: recur <command> [options]\n"
            "\n"
            "Recurrent neural networks (RNN, LSTM, GRU) in C: language models, classifiers,\nforecasters, speech recognition and translation.\n"
            "\n"
            "Commands:\n"
            "  train     train a language model on a text file (checkpoints, resume, metrics)\n"
            "  sample    generate text from a checkpoint\n"
            "  eval      loss, bits per character and perplexity of a checkpoint on a text\n"
            "  classify  train, predict and evaluate sequence classifiers (text, .ts sequences)\n"
            "  speech    speech recognition with CTC: train, transcribe, eval\n"
            "  forecast  forecast a CSV time series: train, predict, eval (with baselines)\n"
            "  translate translate sentences with an attention encoder-decoder: train, eval\n"
            "\n"
            "Options:\n"
            "  --version  print the version and the matrix-product backend\n"
            "  --help     show this help\n"
            "\n"
            "'recur <command> --help' lists the options of a command with their defaults.\n"
            "Example:\n"
            "  recur train --data data/tinyshakespeare.txt --out runs/shakespeare --time 180\n"
            "  recur sample --model runs/shakespeare/best.safetensors --prime 'ROMEO:'\n");
}

int main(int argc, char **argv)
{
    trainer_signals_init();
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("recur %s (matrix products: %s)\n", recur_version(), recur_blas_backend());
        return CLI_OK;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (strcmp(command, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(command, "sample") == 0)
        return cmd_sample(argc - 2, argv + 2);
    if (strcmp(command, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(command, "classify") == 0)
        return cmd_classify(argc - 2, argv + 2);
    if (strcmp(command, "speech") == 0)
        return cmd_speech(argc - 2, argv + 2); /* src/cli/speech.c */
    if (strcmp(command, "forecast") == 0)
        return cmd_forecast(argc - 2, argv + 2); /* src/cli/forecast.c */
    if (strcmp(command, "translate") == 0)
        return cmd_translate(argc - 2, argv + 2); /* src/cli/translate.c */
    fprintf(stderr, "recur: unknown command '%s' (commands: train, sample, eval)\n"
                    "Try 'recur --help'.\n", command);
    return CLI_USAGE;
}
