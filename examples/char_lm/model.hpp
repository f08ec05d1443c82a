// A small byte-level transformer language model in LibTorch: token and
// learned position embeddings, pre-LayerNorm blocks (causal multi-head
// self-attention written with plain tensor operations, so it runs the same on
// LibTorch 1.13 and 2.x; then a GELU MLP of 4x the width), a final LayerNorm
// and a linear head over the 256 byte values.
//
// Parameter names: tok.weight, pos.weight, blocks.<i>.{ln1,attn,proj,ln2,fc1,fc2}.{weight,bias},
// ln_f.*, head.*.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace char_lm {

// y = x W^T + b. Debian's LibTorch 1.13 does its float32 matrix products with
// the reference BLAS (about 2 GFLOP/s here); oneDNN, which LibTorch carries
// for its own kernels, does them about ten times faster. So on the CPU, where
// LibTorch has oneDNN, the three products of a linear layer (forward, and the
// input's and the weight's gradients) go through torch::mkldnn_linear;
// elsewhere torch::nn::functional::linear. Same result to float32 rounding.
namespace detail {

// a [N, K] times b [M, K] transposed, plus `bias` [M] if defined: [N, M].
inline torch::Tensor onednn_nt(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias = {}) {
  return torch::mkldnn_linear(a.contiguous().to_mkldnn(), b.contiguous(), bias).to_dense();
}

struct onednn_linear_fn : torch::autograd::Function<onednn_linear_fn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& b) {
    ctx->save_for_backward({x, w});
    return onednn_nt(x, w, b);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &gy = grad[0];  // [N, in], [out, in], [N, out]
    return {onednn_nt(gy, w.t()), onednn_nt(gy.t(), x.t()), gy.sum(0)};
  }
};

inline bool use_onednn(const torch::Tensor& x) {
  return at::hasMKLDNN() && x.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

}  // namespace detail

// `l`'s weight and bias applied to x [..., in].
inline torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x) {
  if (!detail::use_onednn(x)) return torch::nn::functional::linear(x, l->weight, l->bias);
  auto sizes = x.sizes().vec();
  sizes.back() = l->weight.size(0);
  return detail::onednn_linear_fn::apply(x.reshape({-1, x.size(-1)}), l->weight, l->bias).view(sizes);
}

struct block_impl : torch::nn::Module {
  block_impl(int d_model, int heads, int layers)
      : heads_(heads),
        ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))),
        attn(register_module("attn", torch::nn::Linear(d_model, 3 * d_model))),
        proj(register_module("proj", torch::nn::Linear(d_model, d_model))),
        ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))),
        fc1(register_module("fc1", torch::nn::Linear(d_model, 4 * d_model))),
        fc2(register_module("fc2", torch::nn::Linear(4 * d_model, d_model))) {
    torch::NoGradGuard ng;
    // GPT-2's initialisation: N(0, 0.02), the residual projections scaled by 1/sqrt(2 * layers).
    const double resid = 0.02 / std::sqrt(2.0 * layers);
    for (auto* l : {&attn, &fc1}) {
      (*l)->weight.normal_(0.0, 0.02);
      (*l)->bias.zero_();
    }
    for (auto* l : {&proj, &fc2}) {
      (*l)->weight.normal_(0.0, resid);
      (*l)->bias.zero_();
    }
  }

  // Causal multi-head self-attention of `h` [B, T, D] (already normalised),
  // before the output projection: position t attends to positions 0..t.
  torch::Tensor attention(const torch::Tensor& h) {
    const auto B = h.size(0), T = h.size(1), D = h.size(2), dh = D / heads_;
    const auto qkv = linear(attn, h).view({B, T, 3, heads_, dh}).permute({2, 0, 3, 1, 4});  // [3, B, H, T, dh]
    const auto q = qkv[0], k = qkv[1], v = qkv[2];
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(dh)));
    const auto future = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(h.device())).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    const auto y = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, T, dh]
    return y.transpose(1, 2).contiguous().view({B, T, D});
  }

  torch::Tensor forward(torch::Tensor x) {
    x = x + linear(proj, attention(ln1->forward(x)));
    return x + linear(fc2, torch::gelu(linear(fc1, ln2->forward(x))));
  }

  int heads_;
  torch::nn::LayerNorm ln1;
  torch::nn::Linear attn, proj;
  torch::nn::LayerNorm ln2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE_IMPL(block, block_impl);

struct model_options {
  int vocab = 256;
  int d_model = 64;
  int heads = 4;
  int layers = 2;
  int context = 64;
};

struct lm_impl : torch::nn::Module {
  explicit lm_impl(const model_options& o)
      : opts(o),
        tok(register_module("tok", torch::nn::Embedding(o.vocab, o.d_model))),
        pos(register_module("pos", torch::nn::Embedding(o.context, o.d_model))),
        blocks(register_module("blocks", torch::nn::ModuleList())),
        ln_f(register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})))),
        head(register_module("head", torch::nn::Linear(o.d_model, o.vocab))) {
    for (int i = 0; i < o.layers; ++i) blocks->push_back(block(o.d_model, o.heads, o.layers));
    torch::NoGradGuard ng;
    tok->weight.normal_(0.0, 0.02);
    pos->weight.normal_(0.0, 0.02);
    head->weight.normal_(0.0, 0.02);
    head->bias.zero_();
  }

  block layer(int i) const { return blocks->ptr<block_impl>(static_cast<std::size_t>(i)); }

  // The embedded input (token + position) of `idx` [B, T] (int64 bytes).
  torch::Tensor embed(const torch::Tensor& idx) {
    const auto T = idx.size(1);
    TORCH_CHECK(T <= opts.context, "char_lm: sequence of ", T, " tokens, longer than the context ", opts.context);
    const auto positions = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
    return tok->forward(idx) + pos->forward(positions).unsqueeze(0);
  }

  // Logits [B, T, vocab] from embeddings [B, T, D].
  torch::Tensor forward_embedded(torch::Tensor x) {
    for (int i = 0; i < opts.layers; ++i) x = layer(i)->forward(x);
    return linear(head, ln_f->forward(x));
  }

  torch::Tensor forward(const torch::Tensor& idx) { return forward_embedded(embed(idx)); }

  model_options opts;
  torch::nn::Embedding tok, pos;
  torch::nn::ModuleList blocks;
  torch::nn::LayerNorm ln_f;
  torch::nn::Linear head;
};
TORCH_MODULE_IMPL(lm, lm_impl);

}  // namespace char_lm
