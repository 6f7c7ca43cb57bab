// Precompiled header for Tandem's targets: the heavy LibTorch and Boost headers
// that most sources include anyway, parsed once per target instead of per file.
#pragma once

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
